// One-time initialisation of the preload library, the static bootstrap buffer
// and free()'s shortcut to glibc. Runs inside the first malloc, possibly from
// another library's constructor: it must not allocate through malloc
// (reentrant calls are served from the bootstrap buffer), use stdio or call
// getenv before libc has set `environ`.
#include "init.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/check.h"
#include "os/os_linux.h"
#include "os/raw_writer.h"
#include "os/thread.h"
#include "process_hooks.h"
#include "report/notices.h"
#include "report/report.h"
#include "report/secure_options.h"
#include "sampling.h"

extern char** environ;

namespace guardarena::preload {

std::atomic<InitState> g_state{InitState::kUninitialised};
std::atomic<Arena*> g_arena{nullptr};
constinit Options g_options{};
std::atomic<bool> g_delegated{false};
std::atomic<std::uintptr_t> g_guarded_lo{0};
std::atomic<std::uintptr_t> g_guarded_span{kShortcutNotOpen};
SharedCounter g_delegated_count;
// 256 KiB of .bss: untouched pages cost nothing, and the loader, libc
// start-up and dlsym together need a few KiB at most.
alignas(4096) unsigned char g_bootstrap[kBootstrapBytes];

namespace {

// Arena::storage_size() is a run-time value of the core; this bound is checked
// against it at init (GUARDARENA_CHECK) so a growing ArenaImpl fails loudly.
constexpr std::size_t kArenaStorageBytes = std::size_t{16} * 1024;
alignas(64) unsigned char g_arena_storage[kArenaStorageBytes];

constinit __attribute__((tls_model("initial-exec"))) thread_local bool t_initialising = false;

constexpr std::size_t kBootstrapHeader = 16;
std::atomic<std::size_t> g_bootstrap_used{0};
std::atomic<std::uint64_t> g_bootstrap_count{0};

constexpr char kOptionsVar[] = "GUARDARENA_OPTIONS=";

void write_line(int fd, const char* a, const char* b = nullptr) noexcept {
  char buf[640];
  RawWriter w(buf, sizeof buf);
  w.str(a);
  if (b != nullptr) w.str(b);
  w.ch('\n');
  w.flush_to(fd);
}

const char* find_options(char** env) noexcept {
  for (char** e = env; *e != nullptr; ++e) {
    if (std::strncmp(*e, kOptionsVar, sizeof kOptionsVar - 1) == 0)
      return *e + sizeof kOptionsVar - 1;
  }
  return nullptr;
}

// For good, and never undone: open_free_shortcut() only moves the span
// away from kShortcutNotOpen.
void close_free_shortcut() noexcept {
  if (g_guarded_span.load(std::memory_order_relaxed) == kShortcutClosed) return;
  g_guarded_span.exchange(kShortcutClosed, std::memory_order_acq_rel);
}

void* fallback_allocate(void*, std::size_t size, std::size_t align) noexcept {
  // Before the block exists: whoever frees it was handed it after this store.
  close_free_shortcut();
  return __libc_memalign(align, size);
}
void fallback_deallocate(void*, void* p) noexcept {
  __libc_free(p);
}

[[noreturn]] void die_with_options_error(const char* message) noexcept {
  write_line(2, message);
  ::_exit(1);
}

void initialise(char** env) noexcept {
  Options o;
  char error[512];
  if (!parse_options(find_options(env), o, error, sizeof error)) die_with_options_error(error);
  if (o.help) {
    static char help[16384];
    RawWriter w(help, sizeof help);
    write_options_help(w);
    w.flush_to(2);
    ::_exit(0);
  }
  // A setuid program's options come from its less privileged caller.
  report::enforce_secure_execution(o);
  g_options = o;
  report::configure(o);
  GUARDARENA_CHECK(Arena::storage_size() <= sizeof g_arena_storage,
                   "preload: the arena outgrew its static storage (raise kArenaStorageBytes)");
  ArenaError why = ArenaError::kNone;
  Arena* a = Arena::create(g_arena_storage, o,
                           FallbackAllocator{fallback_allocate, fallback_deallocate}, &why);
  if (a == nullptr) {
    const char* message = arena_error_message(why);
    // A missing backend is a configuration error; no address space (ulimit
    // -v) is exhaustion, and on_exhaustion=fallback keeps the program
    // running on glibc, unguarded, with one warning.
    if (o.on_exhaustion == Exhaustion::kFail || o.backend == Backend::kGuard)
      die_with_options_error(message);
    write_line(2, message);
    write_line(
        2, "guardarena: warning: running this process unguarded on glibc (on_exhaustion=fallback)");
    g_guarded_span.store(0, std::memory_order_release);  // every non-bootstrap block is glibc's
    return;
  }
  report::warn_if_guard_markers_ignored(o);
  // Only now: the depot and stack caches would take address space from a
  // process that cannot have an arena (ulimit -v) and runs on glibc.
  report::configure_stacks(o);
  if (o.handle_segv) report::install_fault_handler();
  ::pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  g_guard_all = o.sample_rate <= 1 && o.sample_after == 0 && o.min_size == 0 && o.max_size == 0;
  // Published by g_arena's release store below; a thread only takes the
  // fast path once its countdown was drawn after that.
  g_sampling_fast_path.store(o.sample_rate > 1 && o.sample_after == 0 && o.min_size == 0 &&
                                 o.max_size == 0 && !o.print_stats,
                             std::memory_order_relaxed);
  g_arena.store(a, std::memory_order_release);  // last: see g_arena
}

}  // namespace

Arena* init_slow() noexcept {
  if (t_initialising) return nullptr;
  // Initialised without an arena (the process runs on glibc): no lock to try.
  if (g_state.load(std::memory_order_acquire) == InitState::kReady)
    return g_arena.load(std::memory_order_acquire);
  char** env = environ;
  // Before libc's own start-up code has run there is no environment to read
  // the options from; the caller serves the request from the bootstrap buffer
  // and a later call initialises.
  if (env == nullptr) return nullptr;
  InitState expected = InitState::kUninitialised;
  if (!g_state.compare_exchange_strong(expected, InitState::kInitialising,
                                       std::memory_order_acq_rel)) {
    // Another thread is initialising: it makes no blocking call, so wait.
    while (g_state.load(std::memory_order_acquire) != InitState::kReady) ::sched_yield();
    return g_arena.load(std::memory_order_acquire);
  }
  int saved_errno = errno;
  t_initialising = true;
  {
    BusyScope scope(__builtin_frame_address(0));
    initialise(env);
  }
  t_initialising = false;
  g_state.store(InitState::kReady, std::memory_order_release);
  errno = saved_errno;
  return g_arena.load(std::memory_order_relaxed);
}

void* bootstrap_allocate(std::size_t size, std::size_t align) noexcept {
  if (align < kBootstrapHeader) align = kBootstrapHeader;
  if (size > kBootstrapBytes || align > kBootstrapBytes) return nullptr;
  std::size_t used = g_bootstrap_used.load(std::memory_order_relaxed);
  std::size_t start = 0;
  std::size_t end = 0;
  do {
    start = (used + kBootstrapHeader + align - 1) & ~(align - 1);
    end = start + (size == 0 ? 1 : size);
    if (end > kBootstrapBytes) return nullptr;
  } while (!g_bootstrap_used.compare_exchange_weak(used, end, std::memory_order_relaxed));
  std::uint64_t s = size;
  std::memcpy(g_bootstrap + start - sizeof s, &s, sizeof s);
  g_bootstrap_count.fetch_add(1, std::memory_order_relaxed);
  return g_bootstrap + start;  // .bss, never reused: already zero (calloc)
}

std::size_t bootstrap_size(const void* p) noexcept {
  std::uint64_t s = 0;
  std::memcpy(&s, static_cast<const unsigned char*>(p) - sizeof s, sizeof s);
  return static_cast<std::size_t>(s);
}

std::uint64_t bootstrap_count() noexcept {
  return g_bootstrap_count.load(std::memory_order_relaxed);
}

void open_free_shortcut() noexcept {
  Arena* a = ready_arena();
  if (a == nullptr || !g_delegated.load(std::memory_order_relaxed) ||
      g_guarded_span.load(std::memory_order_relaxed) != kShortcutNotOpen)
    return;
  // The base first: it means nothing while the span is not open. Then one
  // compare-exchange from "not open": a fallback that closed the shortcut in
  // the meantime makes it fail, so no moment exists in which a fallback block
  // could be taken for glibc's.
  g_guarded_lo.store(a->reservation_base(), std::memory_order_relaxed);
  std::uintptr_t expected = kShortcutNotOpen;
  g_guarded_span.compare_exchange_strong(expected, a->reservation_size(), std::memory_order_release,
                                         std::memory_order_relaxed);
}

#ifdef GUARDARENA_PRELOAD_FOR_TESTING

void reset_for_testing() noexcept {
  if (Arena* a = g_arena.exchange(nullptr)) a->~Arena();
  g_options = Options{};
  g_delegated.store(false);
  g_guarded_lo.store(0);
  g_guarded_span.store(kShortcutNotOpen);
  g_delegated_count.value.store(0);
  g_bootstrap_used.store(0);
  g_bootstrap_count.store(0);
  reset_sampler_for_testing();
  g_state.store(InitState::kUninitialised);
}

#endif  // GUARDARENA_PRELOAD_FOR_TESTING

}  // namespace guardarena::preload
