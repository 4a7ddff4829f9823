// SIGSEGV/SIGBUS handler: turns a fault on a guard page or a freed slot into
// a report, then gives the signal back so core dumps and debuggers see the
// original fault. Async-signal-safe: no malloc, no stdio, no locks (the arena
// lookup is lock-free); output through report.cpp's raw writer.
#include <signal.h>
#include <sys/ucontext.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "core/arena.h"
#include "os/os_linux.h"
#include "report/a64_access.h"
#include "report/report.h"
#include "stack/stack_trace.h"

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
  auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  Arena* arena = Arena::find_owner(addr);
  if (arena == nullptr) {
    // Not ours: behave as if we were never installed.
    struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
    ::sigaction(sig, &prev, nullptr);
    errno = saved_errno;
    return;  // re-executes the instruction under the previous disposition
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

void ensure_alt_stack() noexcept {
  stack_t cur{};
  if (::sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE) == 0) return;
  // 64 KiB covers the handler's fixed buffers and the symbolizer glue; mapped
  // once per thread that asks and kept for the thread's life.
  std::size_t size = 64 * 1024;
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
