// Pausing every other thread of the process for a moment, with its general
// registers recorded: what a whole-heap pass needs while threads the program
// did not join still run. The leak scan takes a pointer such a thread holds
// only in a register as a root, and the heap check reads blocks no thread can
// free (and, in full mode, close) under it.
//
// The method of in-process collectors such as Boehm GC: a real-time signal to
// each thread, whose handler copies its registers from the signal context and
// waits on a futex until resume(). LeakSanitizer pauses threads with ptrace
// from a helper process instead, which a sandbox or a tracing parent (gdb,
// strace) refuses. A thread that blocks the signal, or is stopped or traced,
// is not sent it (real-time signals queue: a pending instance would outlive
// the stop): it counts as missed, and callers stay correct beside it (they
// read through safe reads and re-check what they find).
//
// A paused thread's interrupted system call restarts (SA_RESTART), except
// those the kernel never restarts after a handler (sleeps, poll, epoll_wait),
// which return EINTR as after any signal.
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace guardarena::os {

// General registers, the stack pointer and the program counter included
// (x86-64: the 23 of mcontext_t.gregs; AArch64: x0-x30, sp, pc).
inline constexpr std::size_t kMaxThreadWords = 34;

struct PausedThread {
  std::uint32_t tid;
  std::uint32_t words;  // valid entries of regs
  std::uintptr_t sp;
  std::uintptr_t regs[kMaxThreadWords];
};

class WorldStop {
 public:
  WorldStop() noexcept = default;
  ~WorldStop() { resume(); }
  WorldStop(const WorldStop&) = delete;
  WorldStop& operator=(const WorldStop&) = delete;

  // Pauses every other thread that can take the signal. Returns once each
  // has arrived or the wait ran out (about a quarter of a second in all, for
  // threads in uninterruptible sleep). One stop at a time in the process: a
  // second stopper waits, and can itself be paused. Until resume(), the
  // calling thread blocks every signal but those of faults (the others wait:
  // a program's handler could need a lock a paused thread holds). No
  // allocation; async-signal-unsafe.
  void stop() noexcept;

  // Lets every paused thread go on, and returns once none is left in the
  // handler. Idempotent.
  void resume() noexcept;

  bool stopped() const noexcept { return active_; }
  // Threads paused now (registers available), and threads that were not:
  // signal blocked, stopped, traced, past the record's capacity, or not
  // arrived in time.
  std::size_t paused() const noexcept { return paused_; }
  std::size_t missed() const noexcept { return missed_; }
  // The i-th paused thread, i < paused().
  const PausedThread& thread(std::size_t i) const noexcept;
  // The signal the handler is installed on, 0 before the first stop() or
  // when every real-time signal already had a handler.
  static int signal_number() noexcept;

  // For the fault handler: when the calling thread is inside a stop, lets
  // the paused threads go on (the report symbolizes, which takes locks one
  // of them may hold). Async-signal-safe.
  static void release_if_held() noexcept;

 private:
  bool active_ = false;
  std::size_t paused_ = 0;
  std::size_t missed_ = 0;
  sigset_t saved_mask_{};
};

}  // namespace guardarena::os
