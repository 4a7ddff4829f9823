// The sampler of the preload library (sampling.h).
#include "sampling.h"

#include <time.h>

#include "init.h"
#include "os/thread.h"

namespace guardarena::preload {

std::atomic<bool> g_sampling_fast_path{false};
bool g_guard_all = true;
constinit __attribute__((tls_model("initial-exec"))) thread_local std::uint64_t t_countdown = 0;

namespace {

// Sampler state, per thread: a countdown to the next guarded allocation drawn
// uniformly from [1, 2N-1] (mean N), so that which allocation is guarded
// changes from run to run and a bug in any one allocation is found within a
// bounded number of runs.
constinit __attribute__((tls_model("initial-exec"))) thread_local std::uint64_t t_rng = 0;
std::atomic<std::uint64_t> g_allocations_seen{0};

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

void reseed_sampler_after_fork() noexcept {
  t_rng = 0;
}

#ifdef GUARDARENA_PRELOAD_FOR_TESTING
void reset_sampler_for_testing() noexcept {
  g_guard_all = true;
  g_sampling_fast_path.store(false);
  g_allocations_seen.store(0);
  t_countdown = 0;
}
#endif

}  // namespace guardarena::preload
