// Thread primitives the core builds on: a cached thread id and two locks.
// No allocation; the thread id is one initial-exec TLS word (a malloc
// replacement must not use general-dynamic TLS, which may call malloc).
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>

namespace guardarena::os {

// The calling thread's id (gettid), cached per thread. After fork() the child
// must call reset_thread_id() (its thread has a new id). Inline: the core
// records it at every allocation and free.
extern constinit __attribute__((tls_model("initial-exec"),
                                visibility("hidden"))) thread_local std::uint32_t t_thread_id;
std::uint32_t query_thread_id() noexcept;
inline std::uint32_t current_tid() noexcept {
  const std::uint32_t tid = t_thread_id;
  return tid != 0 ? tid : query_thread_id();
}
inline void reset_thread_id() noexcept {
  t_thread_id = 0;
}

// A mutex for critical sections of a few hundred ns (a thread-cache refill, a
// quarantine batch): glibc's adaptive mutex spins a bounded number of times
// before it sleeps, so a waiter usually gets the lock without a futex sleep
// and a context switch. Meets the Lockable requirements (std::lock_guard).
class AdaptiveMutex {
 public:
  AdaptiveMutex() noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~AdaptiveMutex() { pthread_mutex_destroy(&mu_); }
  AdaptiveMutex(const AdaptiveMutex&) = delete;
  AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;
  void lock() noexcept { pthread_mutex_lock(&mu_); }
  void unlock() noexcept { pthread_mutex_unlock(&mu_); }

 private:
  pthread_mutex_t mu_;
};

// A readers-writer lock that records no owner: -1 = a writer, n >= 0 = n
// readers; waiters yield. Any thread may release the write side, which a
// fork() child needs: a prepare handler takes it in the parent and the child,
// whose only thread has a new id, releases it (a pthread_rwlock_t would take
// that unlock for a reader's and stay write-locked). Meant for rare writers.
class SharedSpinLock {
 public:
  void lock_shared() noexcept {
    for (;;) {
      int s = state_.load(std::memory_order_relaxed);
      if (s >= 0 && state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire)) return;
      sched_yield();
    }
  }
  void unlock_shared() noexcept { state_.fetch_sub(1, std::memory_order_release); }
  void lock() noexcept {
    for (;;) {
      int expected = 0;
      if (state_.compare_exchange_weak(expected, -1, std::memory_order_acquire)) return;
      sched_yield();
    }
  }
  bool try_lock() noexcept {
    int expected = 0;
    return state_.compare_exchange_strong(expected, -1, std::memory_order_acquire);
  }
  void unlock() noexcept { state_.store(0, std::memory_order_release); }

 private:
  std::atomic<int> state_{0};
};

}  // namespace guardarena::os
