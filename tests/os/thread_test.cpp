// os/thread.h: the cached thread id and the two locks the core uses.
#include "os/thread.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <thread>

namespace guardarena::os {
namespace {

std::uint32_t gettid_now() {
  return static_cast<std::uint32_t>(::syscall(SYS_gettid));
}

TEST(ThreadIdTest, IsTheKernelsThreadId) {
  EXPECT_EQ(current_tid(), gettid_now());
}

TEST(ThreadIdTest, DiffersBetweenThreads) {
  std::uint32_t other = 0;
  std::thread([&] { other = current_tid(); }).join();
  EXPECT_NE(other, 0u);
  EXPECT_NE(other, current_tid());
}

TEST(ThreadIdTest, ResetMakesTheNextCallAskTheKernel) {
  current_tid();
  t_thread_id = 12345;  // what a fork() child inherits: its parent's id
  EXPECT_EQ(current_tid(), 12345u);
  reset_thread_id();
  EXPECT_EQ(current_tid(), gettid_now());
}

TEST(SharedSpinLockTest, ReadersShareAndKeepTheWriterOut) {
  SharedSpinLock l;
  l.lock_shared();
  l.lock_shared();
  EXPECT_FALSE(l.try_lock());
  l.unlock_shared();
  EXPECT_FALSE(l.try_lock());
  l.unlock_shared();
  EXPECT_TRUE(l.try_lock());
  l.unlock();
}

TEST(SharedSpinLockTest, WriterExcludesWriters) {
  SharedSpinLock l;
  l.lock();
  EXPECT_FALSE(l.try_lock());
  l.unlock();
  EXPECT_TRUE(l.try_lock());
  l.unlock();
}

TEST(SharedSpinLockTest, AnotherThreadMayReleaseTheWriteSide) {
  SharedSpinLock l;
  l.lock();                                 // as a fork() prepare handler does in the parent
  std::thread([&] { l.unlock(); }).join();  // as the child's thread does
  EXPECT_TRUE(l.try_lock());
  l.unlock();
}

TEST(AdaptiveMutexTest, ExcludesConcurrentIncrements) {
  AdaptiveMutex mu;
  long counter = 0;
  auto work = [&] {
    for (int i = 0; i < 100000; ++i) {
      std::lock_guard<AdaptiveMutex> g(mu);
      counter = counter + 1;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(counter, 200000);
}

}  // namespace
}  // namespace guardarena::os
