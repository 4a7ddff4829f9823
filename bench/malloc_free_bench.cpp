// Single-threaded malloc-family workloads for malloc_bench: fixed-size
// malloc/free pairs beside a live set, random-size churn, realloc growth and
// large calloc. Only the C allocation API is called, so the same binary
// measures glibc, jemalloc, guardarena, Electric Fence or DUMA through
// LD_PRELOAD. One "op" is one malloc+free pair (one realloc call for the
// growth case); ns/op is 1e9 / items_per_second in the JSON.
#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_support.h"

namespace guardarena::bench {
namespace {

// The blocks a case keeps alive around its timed loop. Google Benchmark calls
// a case several times (iteration-count estimation, then each repetition), and
// building a 1,000,000-block live set under a slow allocator takes seconds, so
// the set survives between calls of the same case and is rebuilt only when
// another case asks for a different one. The loops leave it as they found it
// (pairs) or keep it at the same size (churn), so reuse does not skew runs.
struct LiveSet {
  std::size_t size = 0;  // 0 = random sizes
  std::size_t count = 0;
  std::vector<void*> blocks;

  void clear() noexcept {
    for (void* p : blocks) std::free(p);
    blocks.clear();
    blocks.shrink_to_fit();
    size = count = 0;
  }
};

LiveSet g_live;

constexpr std::size_t kRandomMin = 16;
constexpr std::size_t kRandomMax = 4096;

// Returns false (after SkipWithError) when the allocator ran out of memory.
bool ensure_live_set(benchmark::State& state, std::size_t size, std::size_t count) {
  if (g_live.size == size && g_live.count == count && g_live.blocks.size() == count) return true;
  g_live.clear();
  g_live.blocks.reserve(count);
  Rng rng(42);
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t n = size != 0 ? size : rng.between(kRandomMin, kRandomMax);
    void* p = std::malloc(n);
    if (p == nullptr) {
      // Free the live set first: reporting allocates, and the allocator just
      // said it has nothing left.
      const int saved_errno = errno;
      g_live.clear();
      const std::string msg = "malloc(" + std::to_string(n) + ") returned NULL (" +
                              std::strerror(saved_errno) + ") at live block " + std::to_string(i) +
                              " of " + std::to_string(count);
      state.SkipWithError(msg.c_str());
      return false;
    }
    static_cast<char*>(p)[0] = 1;  // a program uses what it allocates
    g_live.blocks.push_back(p);
  }
  g_live.size = size;
  g_live.count = count;
  return true;
}

void bm_malloc_free(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const auto live = static_cast<std::size_t>(state.range(1));
  if (!ensure_live_set(state, size, live)) return;
  RunCounters counters(state);
  counters.start();
  for (auto _ : state) {
    void* p = std::malloc(size);
    benchmark::DoNotOptimize(p);
    static_cast<volatile char*>(p)[0] = 1;
    std::free(p);
  }
  counters.finish(state.iterations());
}

void bm_random_sizes(benchmark::State& state) {
  const auto live = static_cast<std::size_t>(state.range(0));
  if (!ensure_live_set(state, 0, live)) return;
  Rng rng(7);
  RunCounters counters(state);
  counters.start();
  for (auto _ : state) {
    std::size_t victim = static_cast<std::size_t>(rng.next() % live);
    std::free(g_live.blocks[victim]);
    void* p = std::malloc(rng.between(kRandomMin, kRandomMax));
    benchmark::DoNotOptimize(p);
    static_cast<volatile char*>(p)[0] = 1;
    g_live.blocks[victim] = p;
  }
  counters.finish(state.iterations());
}

void bm_realloc_growth(benchmark::State& state) {
  const auto max = static_cast<std::size_t>(state.range(0));
  g_live.clear();
  std::int64_t reallocs_per_iteration = 0;
  for (std::size_t n = 32; n <= max; n *= 2) ++reallocs_per_iteration;
  RunCounters counters(state);
  counters.start();
  for (auto _ : state) {
    auto* p = static_cast<char*>(std::malloc(16));
    p[0] = 1;
    for (std::size_t n = 32; n <= max; n *= 2) {
      p = static_cast<char*>(std::realloc(p, n));
      benchmark::DoNotOptimize(p);
      p[n - 1] = 1;
    }
    std::free(p);
  }
  counters.finish(state.iterations() * reallocs_per_iteration);
}

void bm_calloc_large(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::size_t page = page_size();
  g_live.clear();
  RunCounters counters(state);
  counters.start();
  for (auto _ : state) {
    auto* p = static_cast<const volatile char*>(std::calloc(1, size));
    if (p == nullptr) {
      state.SkipWithError("calloc returned NULL");
      break;
    }
    // Read one byte per page: the block is used, and a lazy zeroing scheme
    // (fresh mmap) pays its page faults here rather than hiding them.
    int sum = 0;
    for (std::size_t off = 0; off < size; off += page) sum += p[off];
    benchmark::DoNotOptimize(sum);
    std::free(const_cast<char*>(p));
  }
  counters.finish(state.iterations());
}

void register_malloc_free(Scale scale) {
  // Keep any one case's live bytes under 1 GiB so the full run fits the
  // machine under every allocator (glibc holds 65536 x 1e6 = 64 GB otherwise).
  constexpr std::int64_t kMaxLiveBytes = std::int64_t{1} << 30;
  std::vector<std::int64_t> sizes{16, 64, 256, 1024, 4096, 65536};
  // 30,000: just under where Electric Fence and DUMA run out of mappings.
  std::vector<std::int64_t> lives{1000, 10000, 30000, 100000};
  if (scale == Scale::kFull) lives.push_back(1000000);
  if (scale == Scale::kQuick) sizes = {16, 4096, 65536};

  auto* b = benchmark::RegisterBenchmark("malloc_free", bm_malloc_free);
  b->ArgNames({"size", "live"})->UseRealTime();
  for (std::int64_t size : sizes) {
    for (std::int64_t live : lives) {
      if (size * live > kMaxLiveBytes) continue;
      // Quick keeps one 100,000-block point (16 B) for the live-set curve,
      // the rest stay small.
      if (scale == Scale::kQuick && live > 10000 && (size != 16 || live == 30000)) continue;
      if (scale == Scale::kQuick && size == 65536 && live > 1000) continue;
      b->Args({size, live});
    }
  }

  auto* r = benchmark::RegisterBenchmark("random_sizes", bm_random_sizes);
  r->ArgName("live")->UseRealTime();
  for (std::int64_t live : {1000, 10000, 100000}) {
    if (scale == Scale::kQuick && live > 10000) continue;
    r->Arg(live);
  }

  auto* g = benchmark::RegisterBenchmark("realloc_growth", bm_realloc_growth);
  g->ArgName("max")->UseRealTime()->Arg(65536);
  if (scale != Scale::kQuick) g->Arg(1 << 20);

  benchmark::RegisterBenchmark("calloc_large", bm_calloc_large)
      ->ArgName("size")
      ->UseRealTime()
      ->Arg(1 << 20);
}

const RegisterSuite kRegistered(register_malloc_free);

}  // namespace
}  // namespace guardarena::bench
