// Multi-threaded malloc-family workloads for malloc_bench: a producer thread
// allocating blocks that a consumer thread frees (remote frees, the case
// per-thread caches get wrong), and independent per-thread churn at 1 and 2
// threads (lock contention). Only the C allocation API is called. Times are
// wall clock; ns/op is aggregate (1e9 / items_per_second over all threads).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "bench_support.h"

namespace guardarena::bench {
namespace {

// Single-producer single-consumer ring of block pointers. Both threads run the
// same number of iterations (Google Benchmark gives each thread the same
// count), so every pushed block is popped and freed by the consumer.
class HandoffRing {
 public:
  void reset() noexcept {
    head_.store(0, std::memory_order_relaxed);
    tail_.store(0, std::memory_order_relaxed);
  }
  void push(void* p) noexcept {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    std::size_t spins = 0;
    while (head - tail_.load(std::memory_order_acquire) == kCapacity) backoff(spins);
    slots_[head % kCapacity] = p;
    head_.store(head + 1, std::memory_order_release);
  }
  void* pop() noexcept {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    std::size_t spins = 0;
    while (head_.load(std::memory_order_acquire) == tail) backoff(spins);
    void* p = slots_[tail % kCapacity];
    tail_.store(tail + 1, std::memory_order_release);
    return p;
  }

 private:
  // On a 2-core shared machine the other side may be descheduled; yield
  // rather than burn the core it needs.
  static void backoff(std::size_t& spins) noexcept {
    if (++spins > 64) std::this_thread::yield();
  }
  static constexpr std::size_t kCapacity = 1024;
  alignas(64) std::atomic<std::size_t> head_{0};
  alignas(64) std::atomic<std::size_t> tail_{0};
  alignas(64) void* slots_[kCapacity] = {};
};

HandoffRing g_ring;

void bm_producer_consumer(benchmark::State& state) {
  // Thread 0 produces, thread 1 consumes. Google Benchmark holds both threads
  // at a barrier before the first iteration, so the reset is visible.
  if (state.thread_index() == 0) g_ring.reset();
  RunCounters counters(state);
  Rng rng(static_cast<std::uint64_t>(state.thread_index()) + 11);
  counters.start();
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      void* p = std::malloc(rng.between(16, 256));
      static_cast<volatile char*>(p)[0] = 1;
      g_ring.push(p);
    }
  } else {
    for (auto _ : state) {
      void* p = g_ring.pop();
      static_cast<volatile char*>(p)[0] = 2;
      std::free(p);
    }
  }
  // Each block counts once: as the producer's item.
  counters.finish(state.thread_index() == 0 ? state.iterations() : 0);
}

void bm_churn_threads(benchmark::State& state) {
  constexpr std::size_t kLive = 1000;
  Rng rng(static_cast<std::uint64_t>(state.thread_index()) * 977 + 3);
  std::vector<void*> live(kLive);
  for (void*& p : live) {
    p = std::malloc(rng.between(16, 1024));
    static_cast<volatile char*>(p)[0] = 1;
  }
  RunCounters counters(state);
  counters.start();
  for (auto _ : state) {
    std::size_t victim = static_cast<std::size_t>(rng.next() % kLive);
    std::free(live[victim]);
    void* p = std::malloc(rng.between(16, 1024));
    benchmark::DoNotOptimize(p);
    static_cast<volatile char*>(p)[0] = 1;
    live[victim] = p;
  }
  counters.finish(state.iterations());
  for (void* p : live) std::free(p);
}

void register_threads(Scale) {
  benchmark::RegisterBenchmark("producer_consumer", bm_producer_consumer)
      ->UseRealTime()
      ->Threads(2);
  benchmark::RegisterBenchmark("churn_threads", bm_churn_threads)
      ->UseRealTime()
      ->Threads(1)
      ->Threads(2);
}

const RegisterSuite kRegistered(register_threads);

}  // namespace
}  // namespace guardarena::bench
