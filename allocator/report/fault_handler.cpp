// SIGSEGV/SIGBUS handler: turns a fault on a guard page or a freed slot into
// a report, and every other fault the program does not handle itself (a
// wild or null pointer, a stack overflow in any thread) into a report of its
// own, then gives the signal back so core dumps and debuggers see the
// original fault. Async-signal-safe: no malloc, no stdio, no locks (the arena
// lookup is lock-free); output through report.cpp's raw writer.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/ucontext.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "core/arena.h"
#include "os/os_linux.h"
#include "os/thread.h"
#include "os/world_stop.h"
#include "report/a64_access.h"
#include "report/report.h"
#include "stack/stack_trace.h"

// glibc: the top of the main thread's stack, set before any constructor.
extern "C" void* __libc_stack_end;

namespace guardarena::report {

bool begin_report() noexcept;
unsigned configured_exitcode() noexcept;
std::size_t configured_depth() noexcept;

namespace {

struct sigaction g_prev_segv;
struct sigaction g_prev_bus;
std::atomic<bool> g_installed{false};

#if defined(__aarch64__)
// The kernel appends an esr_context record to the signal frame of a fault:
// for a data abort (EC 0x24/0x25) bit 6 (WnR) is set for writes. Emulators
// may leave it out; the instruction at pc then decides.
Access access_from_aarch64(const ucontext_t* uc) noexcept {
  constexpr std::uint32_t kEsrMagic = 0x45535201;
  const auto* p = reinterpret_cast<const unsigned char*>(uc->uc_mcontext.__reserved);
  const unsigned char* end = p + sizeof uc->uc_mcontext.__reserved;
  while (end - p >= 8) {
    std::uint32_t magic = 0;
    std::uint32_t size = 0;
    std::memcpy(&magic, p, 4);
    std::memcpy(&size, p + 4, 4);
    if (magic == 0 || size < 8 || size > static_cast<std::size_t>(end - p)) break;
    if (magic == kEsrMagic && size >= 16) {
      std::uint64_t esr = 0;
      std::memcpy(&esr, p + 8, 8);
      const std::uint64_t ec = esr >> 26;
      if (ec == 0x24 || ec == 0x25) return (esr & (1u << 6)) != 0 ? Access::kWrite : Access::kRead;
      break;
    }
    p += size;
  }
  std::uint32_t insn = 0;
  std::memcpy(&insn, reinterpret_cast<const void*>(uc->uc_mcontext.pc), sizeof insn);
  return a64_access(insn);
}
#endif

Access access_from(const void* ctx) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(ctx);
#if defined(__x86_64__)
  // Bit 1 of the page-fault error code is set for writes.
  return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? Access::kWrite : Access::kRead;
#elif defined(__aarch64__)
  return access_from_aarch64(uc);
#else
  (void)uc;
  return Access::kUnknown;
#endif
}

// The stack of a thread the shim started (prepare_thread_for_faults): its
// usable range and the guard region below it. Zero for other threads.
struct ThreadStackBounds {
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
  std::size_t guard = 0;
};
__attribute__((tls_model("initial-exec"))) thread_local ThreadStackBounds t_stack;
__attribute__((tls_model("initial-exec"))) thread_local bool t_alt_stack_ours = false;

std::uintptr_t stack_pointer_of(const void* ctx) noexcept {
  const auto* uc = static_cast<const ucontext_t*>(ctx);
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(uc->uc_mcontext.sp);
#else
  (void)uc;
  return 0;
#endif
}

// True when a fault at `addr` ran off the end of the faulting thread's stack:
// near its stack pointer (a push or call below the last mapped stack page,
// or a frame just allocated there), inside the guard region below a stack
// the shim recorded, or, on the main thread, below the top of its stack by
// no more than RLIMIT_STACK plus the kernel's stack guard gap (256 pages).
// Reads only registers, TLS and getrlimit: async-signal-safe and cheap on a
// stack with no room left.
bool is_stack_overflow(std::uintptr_t addr, const void* ctx) noexcept {
  if (addr == 0) return false;
  const std::uintptr_t sp = stack_pointer_of(ctx);
  // Below sp: the x86-64 red zone (128 bytes) and multi-register stores.
  constexpr std::uintptr_t kBelowSp = 512;
  constexpr std::uintptr_t kAboveSp = 64 * 1024;
  if (sp != 0 && addr + kBelowSp > sp && addr < sp + kAboveSp) return true;
  const ThreadStackBounds& b = t_stack;
  if (b.lo != 0 && addr < b.lo && addr + b.guard >= b.lo) return true;
  if (static_cast<pid_t>(os::current_tid()) == ::getpid()) {
    const auto top = reinterpret_cast<std::uintptr_t>(__libc_stack_end);
    struct rlimit rl {};
    if (top != 0 && ::getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < top) {
      const std::uintptr_t gap = 256 * os::page_size();
      const std::uintptr_t limit = top - static_cast<std::uintptr_t>(rl.rlim_cur);
      if (addr < top && addr + gap >= limit) return true;
    }
  }
  return false;
}

// x86-64 user addresses end at 2^47 (2^56 with 5-level paging); the kernel
// reports a general-protection fault on a non-canonical address with
// si_code SI_KERNEL and address 0.
const char* hint_for(std::uintptr_t addr, const siginfo_t* info) noexcept {
#if defined(__x86_64__)
  if (info->si_code == SI_KERNEL && addr == 0) {
    return "a general-protection fault: the address is probably non-canonical (the kernel does "
           "not report it)";
  }
  constexpr std::uintptr_t kCanonicalTop = std::uintptr_t{1} << 56;
  if (addr >= kCanonicalTop && addr < ~(kCanonicalTop - 1)) return "address is non-canonical";
#else
  (void)info;
#endif
  if (addr < os::page_size()) return "address points to the zero page";
  // vm.mmap_min_addr's default: nothing is ever mapped this low.
  constexpr std::uintptr_t kNeverMapped = 64 * 1024;
  if (addr < kNeverMapped) {
    return "address is in the lowest 64 KiB, never mapped: a null pointer plus an offset?";
  }
  return nullptr;
}

// A program's own handler (installed before guardarena's) handles faults
// outside the arena itself, without a report.
bool program_handles(const struct sigaction& prev) noexcept {
  if ((prev.sa_flags & SA_SIGINFO) != 0) return prev.sa_sigaction != nullptr;
  return prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN;
}

void fill_access_stack(Report& r, std::uintptr_t* pcs, const void* ctx) noexcept {
  std::size_t depth = configured_depth();
  std::size_t max = depth > 64 ? 64 : depth == 0 ? 1 : depth;
  // libgcc's unwinder sees through frameless leaves (memcpy, or GCC popping
  // rbp before a leaf's last load), so the faulting function's caller is
  // never missing. It takes the loader's lock: a fault inside dlopen itself
  // would wait, which we accept for a crash path.
  r.access_depth = stack::capture_from_context(static_cast<const ucontext_t*>(ctx), pcs, max,
                                               stack::Unwinder::kLibgcc);
  r.access_stack = pcs;
  r.first_frame_is_pc = true;
}

void restore_and_reraise(int sig, siginfo_t* info, void* ctx) noexcept {
  struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, ctx);
    return;
  }
  if (prev.sa_handler == SIG_IGN) {
    // Ignoring a synchronous fault would spin forever on the same instruction.
    ::signal(sig, SIG_DFL);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != nullptr) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: returning re-executes the faulting instruction, which
  // faults again with SIG_DFL in place: the kernel kills us with the original
  // signal and address, and a core dump shows the real fault.
  ::signal(sig, SIG_DFL);
}

void handler(int sig, siginfo_t* info, void* ctx) {
  int saved_errno = errno;
  // A fault inside a heap check or leak scan: the threads it paused must go
  // on before the report symbolizes (a paused one may hold the loader's lock).
  os::WorldStop::release_if_held();
  auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  Arena* arena = Arena::find_owner(addr);
  if (arena == nullptr) {
    struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
    if (program_handles(prev) || info->si_code <= 0) {
      // The program's own fault handler, or a signal sent with kill() or
      // raise() (no fault to describe): behave as if we were never
      // installed.
      ::sigaction(sig, &prev, nullptr);
      errno = saved_errno;
      // A sent signal is not re-sent by returning; a fault re-executes the
      // instruction under the previous disposition.
      if (info->si_code <= 0) ::raise(sig);
      return;
    }
    if (begin_report()) {
      Report r;
      r.address = addr;
      r.access = access_from(ctx);
      if (sig == SIGSEGV && is_stack_overflow(addr, ctx)) {
        r.kind = ErrorKind::kStackOverflow;
        r.hint = "address is in the guard region below the thread's stack";
      } else {
        r.kind = sig == SIGBUS ? ErrorKind::kBusUnknownAddress : ErrorKind::kSegvUnknownAddress;
        r.hint = hint_for(addr, info);
        if (info->si_code == SI_KERNEL) r.access = Access::kUnknown;
      }
      std::uintptr_t pcs[64];
      fill_access_stack(r, pcs, ctx);
      write_report(r);
      if (configured_exitcode() != 0) ::_exit(static_cast<int>(configured_exitcode()));
    }
    restore_and_reraise(sig, info, ctx);
    errno = saved_errno;
    return;
  }
  if (begin_report()) {
    AddressInfo ai;
    arena->describe(addr, ai);
    Report r;
    r.kind = ai.kind;
    r.address = addr;
    r.access = access_from(ctx);
    r.has_block = ai.has_block;
    r.block.block = ai.block;
    r.block.size = ai.size;
    r.block.align = ai.align;
    r.block.alloc_kind = ai.alloc_kind;
    r.block.alloc_stack = ai.alloc_stack;
    r.block.free_stack = ai.free_stack;
    r.block.alloc_tid = ai.alloc_tid;
    r.block.free_tid = ai.free_tid;
    r.distance = ai.distance;
    std::uintptr_t pcs[64];
    fill_access_stack(r, pcs, ctx);
    write_report(r);
    if (configured_exitcode() != 0) ::_exit(static_cast<int>(configured_exitcode()));
  } else {
    // Another thread is writing a report: let it finish before this fault
    // kills the process (bounded: a report never takes 10 s).
    for (int i = 0; i < 10000; ++i) {
      struct timespec ms = {0, 1000000};
      ::nanosleep(&ms, nullptr);
    }
  }
  restore_and_reraise(sig, info, ctx);
  errno = saved_errno;
}

}  // namespace

std::size_t thread_alt_stack_size() noexcept {
  // 64 KiB covers the handler's fixed buffers and the symbolizer glue; a CPU
  // with a large register state (AVX-512, SME) needs more per frame.
  const std::size_t want = 4 * os::min_signal_stack_size();
  return want > 64 * 1024 ? want : 64 * 1024;
}

void prepare_thread_for_faults(void* alt_stack, std::size_t alt_size) noexcept {
  pthread_attr_t attr;
  if (::pthread_getattr_np(::pthread_self(), &attr) == 0) {
    void* lo = nullptr;
    std::size_t size = 0;
    std::size_t guard = 0;
    if (::pthread_attr_getstack(&attr, &lo, &size) == 0 &&
        ::pthread_attr_getguardsize(&attr, &guard) == 0) {
      t_stack.lo = reinterpret_cast<std::uintptr_t>(lo);
      t_stack.hi = t_stack.lo + size;
      // A guard of 0 (the program asked for none) still leaves unmapped or
      // foreign memory below: one page of it counts as the stack's.
      t_stack.guard = guard != 0 ? guard : os::page_size();
    }
    ::pthread_attr_destroy(&attr);
  }
  if (alt_stack == nullptr) return;
  stack_t cur{};
  if (::sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE) == 0) return;
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = alt_size;
  ss.ss_flags = 0;
  if (::sigaltstack(&ss, nullptr) == 0) t_alt_stack_ours = true;
}

void forget_thread_alt_stack() noexcept {
  if (!t_alt_stack_ours) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
  t_alt_stack_ours = false;
}

void ensure_alt_stack() noexcept {
  stack_t cur{};
  if (::sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE) == 0) return;
  // Mapped once per thread that asks and kept for the thread's life.
  std::size_t size = thread_alt_stack_size();
  void* mem = os::map_internal(size, "guardarena:altstack");
  if (mem == nullptr) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = size;
  ss.ss_flags = 0;
  ::sigaltstack(&ss, nullptr);
}

void install_fault_handler() noexcept {
  if (g_installed.exchange(true)) return;
  ensure_alt_stack();
  struct sigaction sa {};
  sa.sa_sigaction = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  ::sigaction(SIGSEGV, &sa, &g_prev_segv);
  ::sigaction(SIGBUS, &sa, &g_prev_bus);
}

}  // namespace guardarena::report
