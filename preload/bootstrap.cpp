// One-time initialisation of the preload library, the static bootstrap buffer,
// the sampler and the exit-time statistics. Runs inside the first malloc,
// possibly from another library's constructor: it must not allocate through
// malloc (reentrant calls are served from the bootstrap buffer), use stdio or
// call getenv before libc has set `environ`.
#include "bootstrap.h"

#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/check.h"
#include "os/os_linux.h"
#include "os/raw_writer.h"
#include "os/thread.h"
#include "report/leaks.h"
#include "report/report.h"

extern char** environ;

namespace guardarena::preload {

std::atomic<InitState> g_state{InitState::kUninitialised};
std::atomic<bool> g_sampling_fast_path{false};
Arena* g_arena = nullptr;
constinit Options g_options{};
std::atomic<bool> g_delegated{false};
std::atomic<std::uintptr_t> g_guarded_lo{0};
std::atomic<std::uintptr_t> g_guarded_span{kShortcutNotOpen};
SharedCounter g_delegated_count;
bool g_guard_all = true;
constinit __attribute__((tls_model("initial-exec"))) thread_local std::uint64_t t_countdown = 0;
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

// Sampler state, per thread: a countdown to the next guarded allocation drawn
// uniformly from [1, 2N-1] (mean N), so that which allocation is guarded
// changes from run to run and a bug in any one allocation is found within a
// bounded number of runs.
constinit __attribute__((tls_model("initial-exec"))) thread_local std::uint64_t t_rng = 0;
std::atomic<std::uint64_t> g_allocations_seen{0};

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

void* fallback_allocate(std::size_t size, std::size_t align) noexcept {
  // Before the block exists: whoever frees it was handed it after this store.
  close_free_shortcut();
  return __libc_memalign(align, size);
}
void fallback_deallocate(void* p) noexcept {
  __libc_free(p);
}

// fork(): the arena's locks are held across fork so the child sees a
// consistent heap; glibc runs these after every other prepare handler that
// was registered later, and unlocks before the child's other handlers run.
void before_fork() noexcept {
  if (Arena* a = ready_arena()) a->lock_all();
}
void after_fork_parent() noexcept {
  if (Arena* a = ready_arena()) a->unlock_all();
}
void after_fork_child() noexcept {
  if (Arena* a = ready_arena()) a->unlock_all();
  os::reset_thread_id();
  t_rng = 0;  // the child samples differently from its parent
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
  if (::getauxval(AT_SECURE) != 0 && !o.log_path.empty()) {
    // A setuid program must not let its caller choose a file it writes to.
    write_line(2, "guardarena: warning: log_path ignored in a secure-execution (setuid) process");
    o.log_path = Text{};
  }
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
  // Only now: the depot and stack caches would take address space from a
  // process that cannot have an arena (ulimit -v) and runs on glibc.
  report::configure_stacks(o);
  if (o.handle_segv) report::install_fault_handler();
  ::pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  g_guard_all = o.sample_rate <= 1 && o.sample_after == 0 && o.min_size == 0 && o.max_size == 0;
  // Published by the release store of g_state, like g_arena; a thread only
  // takes the fast path once its countdown was drawn after that.
  g_sampling_fast_path.store(o.sample_rate > 1 && o.sample_after == 0 && o.min_size == 0 &&
                                 o.max_size == 0 && !o.print_stats,
                             std::memory_order_relaxed);
  g_arena = a;
}

std::uint64_t next_random() noexcept {
  if (t_rng == 0) {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    std::uint64_t seed =
        static_cast<std::uint64_t>(ts.tv_nsec) ^ (static_cast<std::uint64_t>(ts.tv_sec) << 30) ^
        (std::uint64_t{os::current_tid()} << 40) ^ reinterpret_cast<std::uintptr_t>(&t_rng);
    // splitmix64 finaliser: spreads the few changing bits of the seed.
    seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ull;
    seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebull;
    t_rng = (seed ^ (seed >> 31)) | 1;
  }
  // xorshift64*
  t_rng ^= t_rng >> 12;
  t_rng ^= t_rng << 25;
  t_rng ^= t_rng >> 27;
  return t_rng * 0x2545f4914f6cdd1dull;
}

}  // namespace

Arena* init_slow() noexcept {
  if (t_initialising) return nullptr;
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
    return g_arena;
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
  return g_arena;
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

bool should_guard_slow(std::size_t size) noexcept {
  const Options& o = g_options;
  if (o.sample_after != 0 && g_allocations_seen.load(std::memory_order_relaxed) < o.sample_after &&
      g_allocations_seen.fetch_add(1, std::memory_order_relaxed) < o.sample_after) {
    return false;
  }
  if (size < o.min_size || (o.max_size != 0 && size > o.max_size)) return false;
  if (o.sample_rate <= 1) return true;
  if (t_countdown == 0) {
    std::uint64_t span =
        o.sample_rate >= (std::uint64_t{1} << 62) ? UINT64_MAX : 2 * o.sample_rate - 1;
    t_countdown = 1 + next_random() % span;
  }
  return --t_countdown == 0;
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

void write_stats() noexcept {
  Arena* a = ready_arena();
  if (a == nullptr) return;
  ArenaStats s = a->stats();
  const Options& o = g_options;
  char buf[2048];
  RawWriter w(buf, sizeof buf);
  w.str("guardarena: statistics (pid ").dec(static_cast<std::uint64_t>(::getpid())).str(")\n");
  w.str("  backend ")
      .str(s.backend)
      .str(", mode ")
      .str(o.mode == Mode::kFast ? "fast" : "full")
      .str(", sample_rate ")
      .dec(o.sample_rate)
      .ch('\n');
  w.str("  guarded allocations ")
      .dec(s.guarded_allocations)
      .str(", unguarded by sampling ")
      .dec(g_delegated_count.value.load(std::memory_order_relaxed))
      .str(", bootstrap ")
      .dec(bootstrap_count())
      .ch('\n');
  w.str("  fallback allocations (guard pages exhausted) ")
      .dec(s.fallback_allocations)
      .str(", still live ")
      .dec(s.fallback_live)
      .str(", failed ")
      .dec(s.failed_allocations)
      .ch('\n');
  w.str("  live blocks ")
      .dec(s.live_blocks)
      .str(" (")
      .dec(s.live_bytes)
      .str(" bytes), peak ")
      .dec(s.peak_live_blocks)
      .str(" (")
      .dec(s.peak_live_bytes)
      .str(" bytes)\n");
  w.str("  quarantine ")
      .dec(s.quarantined_blocks)
      .str(" blocks (")
      .dec(s.quarantined_bytes)
      .str(" bytes)");
  if (s.vmas_in_use != 0) w.str(", mappings for live blocks ").dec(s.vmas_in_use);
  w.ch('\n');
  w.str("  syscalls ").dec(s.syscalls).str(", reserved ").dec(s.reserved_bytes >> 20).str(" MiB\n");
  w.flush_to(report::report_fd());
}

#ifdef GUARDARENA_PRELOAD_FOR_TESTING

void reset_for_testing() noexcept {
  if (g_arena != nullptr) g_arena->~Arena();
  g_arena = nullptr;
  g_options = Options{};
  g_guard_all = true;
  g_sampling_fast_path.store(false);
  g_delegated.store(false);
  g_guarded_lo.store(0);
  g_guarded_span.store(kShortcutNotOpen);
  g_delegated_count.value.store(0);
  g_bootstrap_used.store(0);
  g_bootstrap_count.store(0);
  g_allocations_seen.store(0);
  t_countdown = 0;
  g_state.store(InitState::kUninitialised);
}

#else

namespace {

// Initialise even in a program that never allocates, so a bad
// GUARDARENA_OPTIONS always stops it; runs after libc's constructors.
__attribute__((constructor)) void initialise_at_load() noexcept {
  if (!busy()) arena();
}

// ELF destructors run from _dl_fini, after the program's atexit handlers:
// the statistics include everything the program freed on the way out. The
// arena itself is never destroyed (later frees must still find it).
__attribute__((destructor)) void print_stats_at_exit() noexcept {
  Arena* a = ready_arena();
  if (a == nullptr) return;
  if (g_options.print_stats) write_stats();
  if (g_options.detect_leaks && report::check_leaks(*a).any()) {
    // Like LeakSanitizer: a leak makes the run fail. stdio is flushed after
    // the ELF destructors, so flush it here before replacing the status.
    std::fflush(nullptr);
    ::_exit(g_options.exitcode != 0 ? static_cast<int>(g_options.exitcode) : 23);
  }
}

}  // namespace

#endif  // GUARDARENA_PRELOAD_FOR_TESTING

}  // namespace guardarena::preload
