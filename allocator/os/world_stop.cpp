// WorldStop: see world_stop.h for the method and what it costs a paused
// thread. Everything here is raw system calls over memory mapped once:
// stop() runs at exit and inside guardarena_check_heap(), where malloc may be
// the very thing being checked.
#include "os/world_stop.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "os/os_linux.h"
#include "os/raw_writer.h"
#include "os/thread.h"

namespace guardarena::os {
namespace {

// Threads one stop can record; more are paused all the same but counted as
// missed (their registers are not known).
constexpr std::uint32_t kCapacity = 8192;
// Whole wait for threads to arrive, and the interval at which those that
// have not are looked at again (gone, blocked, stopped).
constexpr long kWaitBudgetNs = 250'000'000;
constexpr long kRecheckNs = 5'000'000;

struct Record {
  std::atomic<std::uint32_t> generation;  // the stop it was written for, once complete
  PausedThread thread;
};

// Shared with the signal handler: plain words and atomics, no constructor.
struct StopState {
  std::atomic<std::uint32_t> generation{0};  // odd while a stop is in progress
  std::atomic<std::uint32_t> arrived{0};     // handler entries, ever
  std::atomic<std::uint32_t> left{0};        // handler exits, ever
  std::atomic<std::uint32_t> recorded{0};    // threads paused in this stop
  std::atomic<std::uint32_t> next{0};        // next free record
  std::atomic<int> pid{0};
  std::atomic<int> signal{0};           // 0: none installed (yet, or none free)
  std::atomic<std::uint32_t> owner{0};  // tid of the thread inside stop()..resume()
  Record* records = nullptr;
  PausedThread* snapshot = nullptr;    // the stopper's compact copy
  std::uint32_t* signalled = nullptr;  // tids sent the signal in this stop
  std::uint32_t last_paused = 0;       // entries of snapshot: the last stop's paused threads
};
constinit StopState g;

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value,
           const timespec* timeout) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr,
                   0);
}

void copy_registers(PausedThread& t, const void* context) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  static_assert(NGREG <= kMaxThreadWords);
  for (int i = 0; i < NGREG; ++i) t.regs[i] = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[i]);
  t.words = NGREG;
  t.sp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  static_assert(31 + 2 <= kMaxThreadWords);
  for (int i = 0; i < 31; ++i) t.regs[i] = uc->uc_mcontext.regs[i];
  t.regs[31] = uc->uc_mcontext.sp;
  t.regs[32] = uc->uc_mcontext.pc;
  t.words = 33;
  t.sp = uc->uc_mcontext.sp;
#else
  (void)uc;
  t.words = 0;
  t.sp = 0;
#endif
}

// The handler of the pause signal. Only tgkill() from this process during a
// stop pauses; anything else (a signal sent by another process, or one left
// pending from an earlier stop by a thread that blocked it then) returns.
void on_pause_signal(int, siginfo_t* info, void* context) {
  if (info->si_code != SI_TKILL || info->si_pid != g.pid.load(std::memory_order_relaxed)) return;
  const int saved_errno = errno;
  // Arrival first, then the generation: a handler that sees a stop in
  // progress is counted before that stop's resume() reads `arrived`, so
  // resume() waits for it to leave (the records are not touched after).
  g.arrived.fetch_add(1, std::memory_order_seq_cst);
  const std::uint32_t gen = g.generation.load(std::memory_order_seq_cst);
  const auto tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  // The stopper never pauses itself (an instance left pending on it from an
  // earlier stop, delivered now, would wait for a resume() it cannot call).
  if ((gen & 1) != 0 && g.owner.load(std::memory_order_relaxed) != tid) {
    const std::uint32_t i = g.next.fetch_add(1, std::memory_order_relaxed);
    if (i < kCapacity) {
      Record& r = g.records[i];
      r.thread.tid = tid;
      copy_registers(r.thread, context);
      r.generation.store(gen, std::memory_order_release);
    }
    g.recorded.fetch_add(1, std::memory_order_release);
    futex(&g.recorded, FUTEX_WAKE_PRIVATE, 1, nullptr);
    while (g.generation.load(std::memory_order_acquire) == gen)
      futex(&g.generation, FUTEX_WAIT_PRIVATE, gen, nullptr);
  }
  g.left.fetch_add(1, std::memory_order_release);
  futex(&g.left, FUTEX_WAKE_PRIVATE, 1, nullptr);
  errno = saved_errno;
}

bool handler_installed(int sig) noexcept {
  struct sigaction now {};
  return sig != 0 && ::sigaction(sig, nullptr, &now) == 0 && (now.sa_flags & SA_SIGINFO) != 0 &&
         now.sa_sigaction == on_pause_signal;
}

// Whether `sig`, with the handler installed, reaches this thread: sent to
// itself with the signal unblocked, the handler runs before tgkill returns.
// An emulator may accept a handler for a signal it cannot deliver (qemu-user
// keeps the top real-time signals for itself).
bool delivered_to_self(int sig) noexcept {
  sigset_t only;
  sigset_t before;
  sigemptyset(&only);
  sigaddset(&only, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &only, &before);
  const std::uint32_t arrivals = g.arrived.load(std::memory_order_relaxed);
  const bool sent = ::syscall(SYS_tgkill, ::getpid(), ::syscall(SYS_gettid), sig) == 0;
  const bool ran = sent && g.arrived.load(std::memory_order_relaxed) != arrivals;
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  return ran;
}

// The highest real-time signal nobody has a handler for and that is really
// delivered, taken for good: a pending instance may still be delivered after
// the stop (a thread that had it blocked), and the default action of a
// real-time signal ends the process. Chosen again if the program has since
// put its own handler on it. Needs g.pid set.
bool set_up() noexcept {
  if (g.records == nullptr) {
    const std::size_t bytes =
        page_ceil(kCapacity * (sizeof(Record) + sizeof(PausedThread) + sizeof(std::uint32_t)));
    void* mem = map_internal(bytes, "guardarena:world-stop");
    if (mem == nullptr) return false;
    g.records = static_cast<Record*>(mem);
    g.snapshot = reinterpret_cast<PausedThread*>(g.records + kCapacity);
    g.signalled = reinterpret_cast<std::uint32_t*>(g.snapshot + kCapacity);
  }
  if (handler_installed(g.signal.load(std::memory_order_relaxed))) return true;
  g.signal.store(0, std::memory_order_relaxed);
  // A signal this thread blocks is likely one the program takes with
  // sigwaitinfo() or a signalfd (its disposition stays SIG_DFL): not ours.
  sigset_t blocked;
  ::pthread_sigmask(SIG_BLOCK, nullptr, &blocked);
  for (int sig = SIGRTMAX; sig >= SIGRTMIN; --sig) {
    if (sigismember(&blocked, sig) == 1) continue;
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0) continue;  // unusable here (an emulator's own)
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) continue;
    struct sigaction sa {};
    sa.sa_sigaction = on_pause_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    // Nothing else runs on a paused thread: its own handlers wait too.
    sigfillset(&sa.sa_mask);
    if (::sigaction(sig, &sa, nullptr) != 0) continue;
    // Not delivered: the handler stays (a late instance finds it, not the
    // default action) and the next signal is tried.
    if (!delivered_to_self(sig)) continue;
    g.signal.store(sig, std::memory_order_relaxed);
    return true;
  }
  return false;
}

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// "/proc/self/task/<tid>/<leaf>" in `buf`, NUL-terminated.
template <std::size_t N>
const char* format_task_path(char (&buf)[N], std::uint32_t tid, const char* leaf) noexcept {
  RawWriter w(buf, N - 1);
  w.str("/proc/self/task/").dec(tid).ch('/').str(leaf);
  buf[w.size()] = '\0';
  return buf;
}

// Whether bit `sig` is set in the signal mask of `field` ("\nSigBlk:",
// "\nSigPnd:") of a /proc status text: 16 hex digits, signal 1 lowest.
bool mask_has(const char* status, const char* field, int sig) noexcept {
  const char* digits = std::strstr(status, field);
  if (digits == nullptr) return false;
  digits += std::strlen(field);
  while (*digits == ' ' || *digits == '\t') ++digits;
  const char* end = digits;
  while ((*end >= '0' && *end <= '9') || (*end >= 'a' && *end <= 'f')) ++end;
  const long index = (end - digits) - 1 - (sig - 1) / 4;
  if (index < 0) return false;
  const char c = digits[index];
  const int nibble = c <= '9' ? c - '0' : c - 'a' + 10;
  return (nibble & (1 << ((sig - 1) % 4))) != 0;
}

struct TaskSignalState {
  bool runs = false;     // exists, and is neither stopped, traced nor exiting
  bool blocks = false;   // blocks `sig`
  bool pending = false;  // `sig` is pending on it already
};

TaskSignalState task_signal_state(std::uint32_t tid, int sig) noexcept {
  TaskSignalState t;
  char path[64];
  char status[4096];
  const std::size_t n =
      read_small_file(format_task_path(path, tid, "status"), status, sizeof status - 1);
  if (n == 0) return t;
  status[n] = '\0';
  const char* state = std::strstr(status, "\nState:");
  if (state != nullptr) {
    state += 7;
    while (*state == ' ' || *state == '\t') ++state;
    if (*state == 'T' || *state == 't' || *state == 'Z' || *state == 'X') return t;
  }
  t.runs = true;
  t.blocks = mask_has(status, "\nSigBlk:", sig);
  t.pending = mask_has(status, "\nSigPnd:", sig);
  return t;
}

bool already_signalled(std::uint32_t tid, std::uint32_t count) noexcept {
  for (std::uint32_t i = 0; i < count; ++i) {
    if (g.signalled[i] == tid) return true;
  }
  return false;
}

bool paused_last_time(std::uint32_t tid) noexcept {
  for (std::uint32_t i = 0; i < g.last_paused; ++i) {
    if (g.snapshot[i].tid == tid) return true;
  }
  return false;
}

// One pass over /proc/self/task: signals every thread but `self` that was
// not signalled yet and can take the signal now (/proc/<tid>/status): not
// stopped, traced or exiting, and not blocking it. A thread that blocks it
// is not sent one (but see below): real-time signals queue (against a
// per-user limit), and a pending instance would outlive the stop, even an
// execve(), and end a program that later unblocks it without a handler. Returns how many it
// signalled; `unable` counts the others (all of them when `sig` is 0: no
// handler could be installed).
std::uint32_t signal_new_threads(std::uint32_t self, int sig, std::uint32_t& count,
                                 std::uint32_t& unable) noexcept {
  const int fd = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  const int pid = g.pid.load(std::memory_order_relaxed);
  std::uint32_t sent = 0;
  alignas(8) char buf[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      struct Dirent64 {
        std::uint64_t ino;
        std::int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* d = reinterpret_cast<const Dirent64*>(buf + off);
      off += d->reclen;
      std::uint32_t tid = 0;
      const char* s = d->name;
      if (*s < '0' || *s > '9') continue;
      for (; *s >= '0' && *s <= '9'; ++s) tid = tid * 10 + static_cast<std::uint32_t>(*s - '0');
      if (tid == self || already_signalled(tid, count)) continue;
      if (sig == 0 || count == kCapacity) {
        ++unable;
        continue;
      }
      const TaskSignalState t = task_signal_state(tid, sig);
      // A thread the last stop paused may not be back from our handler yet,
      // whose mask blocks everything until its sigreturn: it is sent the
      // signal all the same (it takes it once back). One that has blocked it
      // since holds that one instance, and is not paused again to get more.
      if (!t.runs || (t.blocks && !paused_last_time(tid))) {
        ++unable;
        continue;
      }
      if (!t.pending && ::syscall(SYS_tgkill, pid, tid, sig) != 0) continue;  // gone meanwhile
      g.signalled[count++] = tid;
      ++sent;
    }
  }
  ::close(fd);
  return sent;
}

bool thread_exists(std::uint32_t tid) noexcept {
  char path[64];
  return ::access(format_task_path(path, tid, ""), F_OK) == 0;
}

// Becomes the one stopper. A waiting stopper spins in user space with the
// signal unblocked, so the current one can pause it. An owner that no longer
// exists (the process forked while one of its threads was stopping; the
// child has only the forking thread) is replaced, and the counters its
// handlers left unbalanced are squared. false when the calling thread owns
// the stop already (a signal handler of the program's, run on the stopper
// before it blocked signals, asking for a stop of its own).
bool take_ownership(std::uint32_t self) noexcept {
  for (std::uint32_t spins = 1;; ++spins) {
    std::uint32_t owner = 0;
    if (g.owner.compare_exchange_weak(owner, self, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return true;
    if (owner == self) return false;
    if (spins % 1024 == 0 && owner != 0 && !thread_exists(owner) &&
        g.owner.compare_exchange_strong(owner, self, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      g.left.store(g.arrived.load(std::memory_order_relaxed), std::memory_order_relaxed);
      return true;
    }
    ::sched_yield();
  }
}

bool was_recorded(std::uint32_t tid, std::uint32_t gen) noexcept {
  const std::uint32_t n = std::min(g.next.load(std::memory_order_acquire), kCapacity);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (g.records[i].generation.load(std::memory_order_acquire) == gen &&
        g.records[i].thread.tid == tid)
      return true;
  }
  return false;
}

// How many of the threads signalled in this stop have paused (an instance
// left pending from an earlier stop may pause a thread not signalled now).
std::uint32_t signalled_and_recorded(std::uint32_t count, std::uint32_t gen) noexcept {
  std::uint32_t n = 0;
  for (std::uint32_t i = 0; i < count; ++i) n += was_recorded(g.signalled[i], gen) ? 1 : 0;
  return n;
}

// Waits until the signalled threads have paused or the deadline passes.
// Every kRecheckNs those that have not arrived are looked at again: one that
// exits or blocks the signal (on its way out, or for good) will not.
void wait_for_arrivals(std::uint32_t count, int sig, std::uint32_t gen,
                       std::uint64_t deadline) noexcept {
  std::uint32_t expected = count;
  for (;;) {
    const std::uint32_t got = g.recorded.load(std::memory_order_acquire);
    // The count is cheap; who arrived is checked once it says all did.
    if (got >= expected && signalled_and_recorded(count, gen) >= expected) return;
    const std::uint64_t now = now_ns();
    if (now >= deadline) return;
    const std::uint64_t left = deadline - now;
    const timespec ts{0, static_cast<long>(left < kRecheckNs ? left : kRecheckNs)};
    if (futex(&g.recorded, FUTEX_WAIT_PRIVATE, got, &ts) != 0 && errno == ETIMEDOUT) {
      expected = 0;
      for (std::uint32_t i = 0; i < count; ++i) {
        const std::uint32_t tid = g.signalled[i];
        if (was_recorded(tid, gen)) {
          ++expected;
          continue;
        }
        // One back from the last stop's handler only now takes it then.
        const TaskSignalState t = task_signal_state(tid, sig);
        if (t.runs && (!t.blocks || paused_last_time(tid))) ++expected;
      }
    }
  }
}

}  // namespace

int WorldStop::signal_number() noexcept {
  return g.signal.load(std::memory_order_relaxed);
}

void WorldStop::stop() noexcept {
  if (active_) return;
  const int saved_errno = errno;
  const std::uint32_t self = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  if (!take_ownership(self)) {
    errno = saved_errno;
    return;  // nested in this thread's own stop: nothing more to pause
  }
  active_ = true;
  paused_ = missed_ = 0;
  g.pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
  const bool ready = set_up();
  const int sig = g.signal.load(std::memory_order_relaxed);
  // Every other thread will block all signals while paused, so the kernel
  // delivers those sent to the process to this one: a handler of the
  // program's running here could wait on a lock a paused thread holds. They
  // wait until resume(); faults stay deliverable.
  sigset_t async;
  sigfillset(&async);
  for (int sync : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT})
    sigdelset(&async, sync);
  ::pthread_sigmask(SIG_BLOCK, &async, &saved_mask_);

  g.next.store(0, std::memory_order_relaxed);
  g.recorded.store(0, std::memory_order_relaxed);
  // Odd while stopped; a fork child may inherit an odd one.
  const std::uint32_t before = g.generation.load(std::memory_order_relaxed);
  const std::uint32_t gen = (before & 1) != 0 ? before + 2 : before + 1;
  g.generation.store(gen, std::memory_order_seq_cst);
  std::uint32_t count = 0;
  std::uint32_t unable = 0;
  const std::uint64_t deadline = now_ns() + kWaitBudgetNs;
  // Threads not yet paused may start others: list again until a pass finds
  // no one new (a paused thread starts nothing).
  for (int pass = 0; pass < 16; ++pass) {
    unable = 0;
    const std::uint32_t sent = signal_new_threads(self, ready ? sig : 0, count, unable);
    wait_for_arrivals(count, sig, gen, deadline);
    if (sent == 0) break;
  }
  const std::uint32_t slots = std::min(g.next.load(std::memory_order_acquire), kCapacity);
  for (std::uint32_t i = 0; i < slots; ++i) {
    if (g.records[i].generation.load(std::memory_order_acquire) == gen)
      g.snapshot[paused_++] = g.records[i].thread;
  }
  g.last_paused = static_cast<std::uint32_t>(paused_);
  missed_ = count + unable > paused_ ? count + unable - paused_ : 0;
  errno = saved_errno;
}

void WorldStop::resume() noexcept {
  if (!active_) return;
  const int saved_errno = errno;
  g.generation.store(g.generation.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  futex(&g.generation, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
  // Every handler that saw this stop in progress has arrived by now (see
  // on_pause_signal); none may still be inside when the next stop reuses the
  // records.
  for (;;) {
    const std::uint32_t out = g.left.load(std::memory_order_acquire);
    if (static_cast<std::int32_t>(g.arrived.load(std::memory_order_seq_cst) - out) <= 0) break;
    const timespec ts{0, 1'000'000};
    futex(&g.left, FUTEX_WAIT_PRIVATE, out, &ts);
  }
  active_ = false;
  paused_ = 0;
  g.owner.store(0, std::memory_order_release);
  ::pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
  errno = saved_errno;
}

void WorldStop::release_if_held() noexcept {
  const auto self = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  if (g.owner.load(std::memory_order_acquire) != self) return;
  const std::uint32_t gen = g.generation.load(std::memory_order_relaxed);
  if ((gen & 1) == 0) return;
  g.generation.store(gen + 1, std::memory_order_seq_cst);
  futex(&g.generation, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

const PausedThread& WorldStop::thread(std::size_t i) const noexcept {
  return g.snapshot[i];
}

}  // namespace guardarena::os
