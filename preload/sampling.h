// The sampling decision of the preload library: which allocations are
// guarded (sample_rate, sample_after, min_size, max_size) and which go to
// glibc. Runs inside malloc: no malloc, initial-exec TLS only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace guardarena::preload {

// True when this allocation of `size` bytes should be guarded, by the options
// sample_rate, sample_after, min_size and max_size. Thread-safe; the sampling
// state is per thread.
bool should_guard_slow(std::size_t size) noexcept;
// Set at init: every allocation is guarded (no sampling option is in use).
extern bool g_guard_all;
inline bool should_guard(std::size_t size) noexcept {
  return g_guard_all || should_guard_slow(size);
}

// The sampled-out fast path (see take_unguarded()). Set at init, before the
// arena is published, when sample_rate alone decides: sample_rate > 1 and no
// min_size, max_size, sample_after or print_stats (which counts every
// unguarded allocation). Never cleared in the library.
extern std::atomic<bool> g_sampling_fast_path;
// This thread's allocations left before the next guarded one; 0 = draw anew
// (a new thread, before init). Only should_guard_slow()
// draws it.
extern constinit __attribute__((tls_model("initial-exec"))) thread_local std::uint64_t t_countdown;

// True when the sampler leaves this allocation to glibc and the caller may
// call __libc_malloc/calloc/realloc itself, skipping allocate(): the countdown
// is consumed exactly as should_guard_slow() would consume it. False sends
// the caller to the slow path, which initialises the arena, draws the next
// countdown or guards the block.
//
// Why the slow path's other duties may be skipped: a countdown above 1 means
// this thread already ran should_guard_slow() to a "not guarded" answer, so
// the arena is ready and g_delegated is set (libc_allocate() sets it before
// asking glibc); re-entrant calls (busy()) go to glibc on either path.
inline bool take_unguarded() noexcept {
  std::uint64_t left = t_countdown;
  if (left <= 1 || !g_sampling_fast_path.load(std::memory_order_relaxed)) return false;
  t_countdown = left - 1;
  return true;
}

// fork(): the child draws its own sequence (it would repeat its parent's).
void reseed_sampler_after_fork() noexcept;

#ifdef GUARDARENA_PRELOAD_FOR_TESTING
void reset_sampler_for_testing() noexcept;
#endif

}  // namespace guardarena::preload
