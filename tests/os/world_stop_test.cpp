// os/world_stop.h: other threads pause, their registers are recorded as the
// kernel saved them, and they go on after resume(); threads that cannot take
// the signal are counted, not waited for.
#include "os/world_stop.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace guardarena::os {
namespace {

constexpr std::uintptr_t kMagic = 0x6a61726d61676963ull;

// Spins with `value` in a callee-saved register (x86-64 r12, AArch64 x19)
// until *stop is non-zero, counting rounds in *rounds.
void spin_holding(std::uintptr_t value, const std::atomic<int>* stop,
                  std::atomic<std::uint64_t>* rounds) {
#if defined(__x86_64__)
  __asm__ volatile(
      "mov %[value], %%r12\n\t"
      "1: lock incq %[rounds]\n\t"
      "pause\n\t"
      "cmpl $0, %[stop]\n\t"
      "je 1b\n\t"
      : [rounds] "+m"(*rounds)
      : [value] "r"(value), [stop] "m"(*stop)
      : "r12", "memory", "cc");
#elif defined(__aarch64__)
  __asm__ volatile(
      "mov x19, %[value]\n\t"
      "1: ldaxr x9, [%[rounds]]\n\t"
      "add x9, x9, #1\n\t"
      "stlxr w10, x9, [%[rounds]]\n\t"
      "cbnz w10, 1b\n\t"
      "yield\n\t"
      "ldr w9, [%[stop]]\n\t"
      "cbz w9, 1b\n\t"
      :
      : [value] "r"(value), [stop] "r"(stop), [rounds] "r"(rounds)
      : "x9", "x10", "x19", "memory", "cc");
#else
  (void)value;
  while (stop->load() == 0) rounds->fetch_add(1);
#endif
}

// Threads of this process but the calling one, from /proc.
std::size_t other_threads() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n - 1;
}

// TSan delivers an asynchronous signal to a thread only when that thread
// next enters one of its interceptors: a thread spinning in assembly never
// takes the pause signal there.
#if defined(__SANITIZE_THREAD__)
#define SKIP_WHERE_SIGNALS_ARE_DEFERRED() \
  GTEST_SKIP()                            \
      << "TSan defers asynchronous signals to its interceptors; spinning threads never pause"
#else
#define SKIP_WHERE_SIGNALS_ARE_DEFERRED() static_cast<void>(0)
#endif

bool holds(const PausedThread& t, std::uintptr_t value) {
  for (std::uint32_t i = 0; i < t.words; ++i) {
    if (t.regs[i] == value) return true;
  }
  return false;
}

TEST(WorldStopTest, PausesOtherThreadsAndRecordsTheirRegisters) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  constexpr int kThreads = 3;
  const std::size_t helpers = other_threads();  // a sanitizer's or an emulator's
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> rounds[kThreads] = {};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back(spin_holding, kMagic + i, &stop, &rounds[i]);
  for (auto& r : rounds) {
    while (r.load() == 0) std::this_thread::yield();
  }

  WorldStop world;
  world.stop();
  ASSERT_TRUE(world.stopped());
  EXPECT_GE(world.paused(), static_cast<std::size_t>(kThreads));
  EXPECT_EQ(world.paused() + world.missed(), kThreads + helpers);
  std::uint64_t at_stop[kThreads];
  for (int i = 0; i < kThreads; ++i) at_stop[i] = rounds[i].load();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(rounds[i].load(), at_stop[i]) << "thread " << i;
  int found = 0;
  for (std::size_t t = 0; t < world.paused(); ++t) {
    EXPECT_NE(world.thread(t).tid, static_cast<std::uint32_t>(::syscall(SYS_gettid)));
    EXPECT_NE(world.thread(t).sp, 0u);
    for (int i = 0; i < kThreads; ++i) found += holds(world.thread(t), kMagic + i) ? 1 : 0;
  }
  EXPECT_EQ(found, kThreads);
  world.resume();
  EXPECT_FALSE(world.stopped());

  for (int i = 0; i < kThreads; ++i) {
    while (rounds[i].load() == at_stop[i]) std::this_thread::yield();
  }
  stop = 1;
  for (auto& t : threads) t.join();
}

TEST(WorldStopTest, StopsAgainAfterResume) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> rounds{0};
  std::thread t(spin_holding, kMagic, &stop, &rounds);
  while (rounds.load() == 0) std::this_thread::yield();
  for (int round = 0; round < 20; ++round) {
    WorldStop world;
    world.stop();
    bool found = false;
    for (std::size_t i = 0; i < world.paused(); ++i)
      found = found || holds(world.thread(i), kMagic);
    ASSERT_TRUE(found) << "round " << round;
  }  // the destructor resumes
  stop = 1;
  t.join();
}

TEST(WorldStopTest, AThreadThatBlocksTheSignalIsCountedNotAwaited) {
  std::atomic<int> stop{0};
  std::atomic<bool> blocked{false};
  std::thread t([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    blocked = true;
    while (stop.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (!blocked.load()) std::this_thread::yield();
  const std::size_t others = other_threads();
  WorldStop world;
  world.stop();
  EXPECT_EQ(world.paused(), 0u);
  EXPECT_EQ(world.missed(), others);
  world.resume();
  stop = 1;
  t.join();
}

// A thread that blocks the signal is never sent one: real-time signals
// queue, and a pending instance would outlive the stop. The thread drains
// what is pending on it once the stops are over.
TEST(WorldStopTest, AThreadThatBlocksTheSignalIsNeverSentOne) {
  {
    WorldStop first;  // chooses the signal
    first.stop();
  }
  const int sig = WorldStop::signal_number();
  ASSERT_NE(sig, 0);
  std::atomic<int> stop{0};
  std::atomic<bool> blocked{false};
  std::atomic<int> drained{-1};
  std::thread t([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    blocked = true;
    while (stop.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    const timespec now{0, 0};
    int n = 0;
    while (sigtimedwait(&only, nullptr, &now) == sig) ++n;
    drained = n;
  });
  while (!blocked.load()) std::this_thread::yield();
  for (int i = 0; i < 10; ++i) {
    WorldStop world;
    world.stop();
    EXPECT_EQ(world.paused(), 0u);
  }
  stop = 1;
  t.join();
  EXPECT_EQ(drained.load(), 0);
}

// Signals sent to the process during a stop wait until resume(): the paused
// threads block them all, and a handler run on the stopper could wait for a
// lock a paused thread holds.
TEST(WorldStopTest, SignalsToTheProcessWaitForResume) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  static std::atomic<int> handled{0};
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = [](int) { handled.fetch_add(1); };
  sigaction(SIGUSR1, &sa, &old);
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> rounds{0};
  std::thread t(spin_holding, kMagic, &stop, &rounds);
  while (rounds.load() == 0) std::this_thread::yield();
  WorldStop world;
  world.stop();
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(handled.load(), 0);
  world.resume();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (handled.load() == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  EXPECT_EQ(handled.load(), 1);
  stop = 1;
  t.join();
  sigaction(SIGUSR1, &old, nullptr);
}

// Every other thread of the process is either paused or missed: with none
// started here, only a sanitizer's own helper threads (TSan's, which block
// every signal) are there to count.
TEST(WorldStopTest, EveryOtherThreadIsPausedOrMissed) {
  const std::size_t others = other_threads();
  WorldStop world;
  world.stop();
  EXPECT_EQ(world.paused() + world.missed(), others);
  world.resume();
  world.resume();  // idempotent
}

// The program's own real-time signal handlers keep their signals: the pause
// takes one nobody handles. Its own process, as the choice is made once.
TEST(WorldStopTest, LeavesTheProgramsOwnSignalHandlersAlone) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  EXPECT_EXIT(
      {
        static std::atomic<int> program_handler_ran{0};
        struct sigaction sa {};
        sa.sa_handler = [](int) { program_handler_ran = 1; };
        sigaction(SIGRTMAX, &sa, nullptr);
        std::atomic<int> stop{0};
        std::atomic<std::uint64_t> rounds{0};
        std::thread t(spin_holding, kMagic, &stop, &rounds);
        while (rounds.load() == 0) std::this_thread::yield();
        WorldStop world;
        world.stop();
        bool paused = false;
        for (std::size_t i = 0; i < world.paused(); ++i)
          paused = paused || holds(world.thread(i), kMagic);
        world.resume();
        stop = 1;
        t.join();
        struct sigaction now {};
        sigaction(SIGRTMAX, nullptr, &now);
        const bool kept = now.sa_handler == sa.sa_handler && program_handler_ran == 0 &&
                          WorldStop::signal_number() != SIGRTMAX &&
                          WorldStop::signal_number() >= SIGRTMIN;
        std::_Exit(paused && kept ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// A signal of the pause's number sent from outside while no stop is in
// progress does nothing (the default action of a real-time signal would end
// the process).
TEST(WorldStopTest, AStraySignalOutsideAStopIsIgnored) {
  WorldStop world;
  world.stop();
  world.resume();
  const int sig = WorldStop::signal_number();
  ASSERT_NE(sig, 0);
  ASSERT_EQ(::raise(sig), 0);
  std::atomic<int> stop{0};
  std::atomic<std::uint64_t> rounds{0};
  std::thread t(spin_holding, kMagic, &stop, &rounds);
  while (rounds.load() == 0) std::this_thread::yield();
  ASSERT_EQ(::pthread_kill(t.native_handle(), sig), 0);
  // The spinning thread took it and goes on (a generous bound: a loaded
  // machine may not schedule it for a while).
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::uint64_t before = rounds.load();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (rounds.load() == before && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
  EXPECT_GT(rounds.load(), before);
  stop = 1;
  t.join();
}

}  // namespace
}  // namespace guardarena::os
