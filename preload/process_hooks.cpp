// fork() and exit hooks of the preload library (process_hooks.h). The exit
// hooks are ELF constructor/destructor functions; the in-process unit test
// of the library (GUARDARENA_PRELOAD_FOR_TESTING) runs without them.
#include "process_hooks.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>

#include "init.h"
#include "os/os_linux.h"
#include "os/raw_writer.h"
#include "os/thread.h"
#include "report/leaks.h"
#include "report/report.h"
#include "sampling.h"

namespace guardarena::preload {

void before_fork() noexcept {
  if (Arena* a = ready_arena()) a->lock_all();
}
void after_fork_parent() noexcept {
  if (Arena* a = ready_arena()) a->unlock_all();
}
void after_fork_child() noexcept {
  if (Arena* a = ready_arena()) a->unlock_all();
  os::reset_thread_id();
  reseed_sampler_after_fork();
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
      .str(" (guard markers: ")
      .str(os::guard_support_name(os::guard_support()))
      .str("), mode ")
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
  w.str("  memory budget ");
  if (s.memory_budget != 0) {
    w.dec(s.memory_budget >> 20).str(" MiB");
  } else {
    w.str("none");
  }
  w.str(" (")
      .str(s.memory_budget_source)
      .str("), guarded resident ")
      .dec(s.guarded_resident_bytes >> 20)
      .str(" MiB, peak ")
      .dec(s.peak_guarded_resident_bytes >> 20)
      .str(" MiB\n");
  w.str("  unguarded at a limit ")
      .dec(s.unguarded_at_limit)
      .str(", guarding 1 allocation in ")
      .dec(s.guard_sample_rate)
      .ch('\n');
  w.str("  syscalls ").dec(s.syscalls).str(", reserved ").dec(s.reserved_bytes >> 20).str(" MiB\n");
  w.flush_to(report::report_fd());
}

#ifndef GUARDARENA_PRELOAD_FOR_TESTING

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
  // The leak scan runs before the heap check. Each pauses the other threads,
  // and a pause ends a sleeping system call early (EINTR): a thread woken at
  // exit may end (CPython's daemon threads do once the interpreter is
  // finalizing) and take the only reference to its blocks with it.
  const bool leaked = g_options.detect_leaks && report::check_leaks(*a).any();
  if (g_options.check_heap_at_exit && report::check_heap(*a, "found at exit", true) != 0) {
    // Like a damaged canary found at free: the run fails with abort()'s
    // SIGABRT, or exitcode. stdio is flushed after the ELF destructors:
    // flush it here so the program's output is not lost.
    std::fflush(nullptr);
    if (g_options.exitcode != 0) ::_exit(static_cast<int>(g_options.exitcode));
    ::signal(SIGABRT, SIG_DFL);
    ::abort();
  }
  if (g_options.print_stats) write_stats();
  if (leaked) {
    // Like LeakSanitizer: a leak makes the run fail. stdio is flushed after
    // the ELF destructors, so flush it here before replacing the status.
    std::fflush(nullptr);
    ::_exit(g_options.exitcode != 0 ? static_cast<int>(g_options.exitcode) : 23);
  }
}

}  // namespace

#endif  // GUARDARENA_PRELOAD_FOR_TESTING

}  // namespace guardarena::preload

#ifndef GUARDARENA_PRELOAD_FOR_TESTING
// Declared in <guardarena/guardarena.h>.
extern "C" __attribute__((visibility("default"))) int guardarena_check_heap(void) noexcept {
  using namespace guardarena;
  Arena* a = preload::ready_arena();
  if (a == nullptr) return 0;
  preload::BusyScope scope(__builtin_frame_address(0));
  return static_cast<int>(report::check_heap(*a, "found by guardarena_check_heap()", false));
}
#endif
