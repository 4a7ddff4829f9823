// Multi-threaded stress of guarded_resource in every mode (full, fast) on both
// backends: threads allocate, free their own blocks, hand blocks to each other
// through a shared array (cross-thread frees), read stats and ownership, and
// between rounds the main thread calls release() with blocks still live.
// Checks: every block keeps its unique fill until its one owner frees it (no
// overlap, no block handed out twice), no deadlock, and the statistics
// balance exactly at the end (live_blocks == 0, allocations counted once).
// Scaled down under TSan, which runs these tests (the names contain "Stress").
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "os/os_linux.h"
#include "test_support.h"

#if defined(__SANITIZE_THREAD__)
#define GA_STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GA_STRESS_TSAN 1
#endif
#endif
#ifndef GA_STRESS_TSAN
#define GA_STRESS_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GA_STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GA_STRESS_ASAN 1
#endif
#endif
#ifndef GA_STRESS_ASAN
#define GA_STRESS_ASAN 0
#endif

namespace guardarena {
namespace {

// TSan makes every access ~10x dearer, ASan's Debug build ~5x; the
// interleavings matter, not the count.
constexpr int kScale = GA_STRESS_TSAN ? 10 : GA_STRESS_ASAN ? 5 : 1;

using testing::ConfigNames;
using testing::FastGuard;
using testing::FastMprotect;
using testing::FullGuard;
using testing::FullMprotect;
using Configs = testing::ModeBackendConfigs;

// One block and what it must contain: an 8-byte tag repeated (unique per
// block, so two live blocks sharing memory corrupt each other's fill).
struct Block {
  unsigned char* p = nullptr;
  std::size_t size = 0;
  std::size_t align = 0;
  std::uint64_t tag = 0;
};

void fill(const Block& b) {
  std::size_t i = 0;
  for (; i + 8 <= b.size; i += 8) std::memcpy(b.p + i, &b.tag, 8);
  for (; i < b.size; ++i) b.p[i] = static_cast<unsigned char>(b.tag >> (8 * (i % 8)));
}

bool intact(const Block& b) {
  std::size_t i = 0;
  for (; i + 8 <= b.size; i += 8) {
    if (std::memcmp(b.p + i, &b.tag, 8) != 0) return false;
  }
  for (; i < b.size; ++i) {
    if (b.p[i] != static_cast<unsigned char>(b.tag >> (8 * (i % 8)))) return false;
  }
  return true;
}

std::size_t pick_size(std::mt19937_64& rng) {
  unsigned r = static_cast<unsigned>(rng() % 100);
  if (r < 70) return rng() % 257;
  if (r < 90) return 257 + rng() % (16 << 10);
  if (r < 98) return (16 << 10) + rng() % (240 << 10);
  return (256 << 10) + rng() % ((GA_STRESS_TSAN || GA_STRESS_ASAN ? 256 : 1792) << 10);
}

std::size_t pick_align(std::mt19937_64& rng) {
  if (rng() % 5 != 0) return std::size_t{1} << (rng() % 5);  // 1..16
  return std::size_t{1} << (rng() % 17);                     // up to 64 KiB
}

// Shared state of one run: the resource, the hand-off array and counters.
class Run {
 public:
  Run(guarded_resource& r, std::size_t handoff_slots) : r_(r), handoff_(handoff_slots) {}

  // What one thread does for `ops` operations.
  void worker(unsigned seed, int ops, bool free_everything) {
    std::mt19937_64 rng(seed);
    std::vector<Block> mine;
    for (int n = 0; n < ops; ++n) {
      unsigned op = static_cast<unsigned>(rng() % 100);
      if (op < 40) {
        if (mine.size() < 48) {
          mine.push_back(allocate(rng));
        } else {
          free_block(take(mine, rng));
        }
      } else if (op < 65) {
        if (!mine.empty()) free_block(take(mine, rng));
      } else if (op < 80) {
        // Hand a block over; whatever was in the slot is ours to free now.
        if (!mine.empty()) {
          auto* b = new Block(take(mine, rng));
          Block* prev = handoff_[rng() % handoff_.size()].exchange(b, std::memory_order_acq_rel);
          if (prev != nullptr) free_handed(prev);
        }
      } else if (op < 95) {
        Block* b = handoff_[rng() % handoff_.size()].exchange(nullptr, std::memory_order_acq_rel);
        if (b != nullptr) free_handed(b);
      } else {
        if (!mine.empty()) {
          const Block& b = mine[rng() % mine.size()];
          if (!r_.owns(b.p)) errors_.fetch_add(1);
        }
        arena_stats s = r_.stats();
        // Fast mode folds other threads' counters late, but never so that
        // more blocks look live than were ever handed out.
        if (s.live_blocks > allocations_.load() + 1000) bad_live_.fetch_add(1);
        if (s.peak_live_blocks > allocations_.load() + 1000) bad_peak_.fetch_add(1);
      }
    }
    if (free_everything) {
      while (!mine.empty()) free_block(take(mine, rng));
    } else {
      // Left for release(): still intact, then dropped without a free.
      for (const Block& b : mine) {
        if (!intact(b)) errors_.fetch_add(1);
      }
    }
    // Folds this thread's fast-mode counters into the arena before the main
    // thread compares totals.
    (void)r_.stats();
  }

  // Frees (or, before release(), drops) what is left in the hand-off array.
  void drain_handoff(bool free_blocks) {
    for (auto& slot : handoff_) {
      Block* b = slot.exchange(nullptr);
      if (b == nullptr) continue;
      if (free_blocks) {
        free_handed(b);
      } else {
        if (!intact(*b)) errors_.fetch_add(1);
        delete b;
      }
    }
  }

  std::uint64_t allocations() const { return allocations_.load(); }
  std::uint64_t frees() const { return frees_.load(); }
  std::uint64_t cross_thread_frees() const { return cross_frees_.load(); }
  std::uint64_t errors() const { return errors_.load(); }
  std::uint64_t bad_live() const { return bad_live_.load(); }
  std::uint64_t bad_peak() const { return bad_peak_.load(); }

 private:
  Block allocate(std::mt19937_64& rng) {
    Block b;
    b.size = pick_size(rng);
    b.align = pick_align(rng);
    b.p = static_cast<unsigned char*>(r_.allocate(b.size, b.align));
    b.tag = next_tag_.fetch_add(1) * 0x9E3779B97F4A7C15ull | 1;
    if (reinterpret_cast<std::uintptr_t>(b.p) % b.align != 0) errors_.fetch_add(1);
    fill(b);
    allocations_.fetch_add(1);
    return b;
  }

  static Block take(std::vector<Block>& v, std::mt19937_64& rng) {
    std::size_t i = rng() % v.size();
    Block b = v[i];
    v[i] = v.back();
    v.pop_back();
    return b;
  }

  void free_block(const Block& b) {
    if (!intact(b)) errors_.fetch_add(1);
    r_.deallocate(b.p, b.size, b.align);
    frees_.fetch_add(1);
  }

  void free_handed(Block* b) {
    free_block(*b);
    cross_frees_.fetch_add(1);
    delete b;
  }

  guarded_resource& r_;
  std::vector<std::atomic<Block*>> handoff_;
  std::atomic<std::uint64_t> next_tag_{1};
  std::atomic<std::uint64_t> allocations_{0}, frees_{0}, cross_frees_{0}, errors_{0};
  std::atomic<std::uint64_t> bad_live_{0}, bad_peak_{0};
};

template <class C>
using ArenaStressTest = testing::ModeBackendTest<C>;
TYPED_TEST_SUITE(ArenaStressTest, Configs, ConfigNames);

void print_figures(const char* what, int threads, const Run& run, double seconds) {
  std::printf(
      "[ figures  ] %s: %d threads, %llu allocations, %llu frees (%llu cross-thread) in %.2f s\n",
      what, threads, static_cast<unsigned long long>(run.allocations()),
      static_cast<unsigned long long>(run.frees()),
      static_cast<unsigned long long>(run.cross_thread_frees()), seconds);
}

// 2, 4 and 8 threads (on any core count: oversubscription only adds
// interleavings) share one resource; everything is freed, stats balance.
TYPED_TEST(ArenaStressTest, MixedOperationsFromTwoToEightThreadsBalance) {
  for (int threads : {2, 4, 8}) {
    guarded_resource r{this->opts("quarantine_slots=4096:handle_segv=0")};
    arena_stats before = r.stats();
    Run run(r, 64);
    const int ops = 360000 / threads / kScale;
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&run, t, ops, threads] {
        run.worker(static_cast<unsigned>(t * 7919 + threads), ops, true);
      });
    }
    for (auto& th : pool) th.join();
    run.drain_handoff(true);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_figures(TypeParam::kOptions, threads, run, secs);

    EXPECT_EQ(run.errors(), 0u) << "corrupted, misaligned or unowned blocks";
    EXPECT_EQ(run.bad_live(), 0u) << "live_blocks above everything ever allocated";
    EXPECT_EQ(run.bad_peak(), 0u) << "peak_live_blocks above everything ever allocated";
    EXPECT_EQ(run.allocations(), run.frees());
    arena_stats s = r.stats();
    EXPECT_EQ(s.live_blocks, 0u);
    EXPECT_EQ(s.live_bytes, 0u);
    EXPECT_EQ(s.fallback_live, 0u);
    EXPECT_EQ(s.guarded_allocations - before.guarded_allocations +
                  (s.fallback_allocations - before.fallback_allocations),
              run.allocations());
    EXPECT_EQ(s.failed_allocations, 0u);
    EXPECT_LE(s.peak_live_blocks, run.allocations());
    EXPECT_LE(s.quarantined_blocks, 4096u);
  }
}

// release() between rounds, with blocks still live in every thread's hands
// and in the hand-off array, while the threads' caches still hold slots of
// the old epoch. Each round starts from an empty arena.
TYPED_TEST(ArenaStressTest, ReleaseBetweenRoundsWithBlocksLiveInEveryThread) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 4;
  guarded_resource r{this->opts("quarantine_slots=1024:handle_segv=0")};
  std::uint64_t total = 0;
  for (int round = 0; round < kRounds; ++round) {
    arena_stats before = r.stats();
    Run run(r, 32);
    bool last = round == kRounds - 1;
    std::vector<std::thread> pool;
    std::barrier sync(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      pool.emplace_back([&, t] {
        sync.arrive_and_wait();  // all threads start on the fresh epoch together
        run.worker(static_cast<unsigned>(round * 131 + t), 40000 / kScale, last);
      });
    }
    for (auto& th : pool) th.join();
    run.drain_handoff(last);
    total += run.allocations();
    EXPECT_EQ(run.errors(), 0u) << "round " << round;
    arena_stats s = r.stats();
    EXPECT_EQ(s.guarded_allocations - before.guarded_allocations +
                  (s.fallback_allocations - before.fallback_allocations),
              run.allocations())
        << "round " << round;
    if (!last) {
      EXPECT_GT(s.live_blocks + s.fallback_live, 0u) << "round " << round << " left nothing live";
      r.release();
      s = r.stats();
      EXPECT_EQ(s.live_blocks, 0u);
      EXPECT_EQ(s.live_bytes, 0u);
      EXPECT_EQ(s.fallback_live, 0u);
      EXPECT_EQ(s.quarantined_blocks, 0u);
    }
  }
  arena_stats s = r.stats();
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.fallback_live, 0u);
  std::printf("[ figures  ] %s: %d rounds x %d threads, %llu allocations, release() x %d\n",
              TypeParam::kOptions, kRounds, kThreads, static_cast<unsigned long long>(total),
              kRounds - 1);
}

// Threads switch their caches between a shared resource and private ones that
// they create and destroy all along (the registry of arenas, cache hand-back
// to the right arena, epochs of destroyed arenas).
TYPED_TEST(ArenaStressTest, PrivateResourcesComeAndGoBesideASharedOne) {
  constexpr int kThreads = 4;
  const int kCycles = 60 / kScale;
  guarded_resource shared{this->opts("quarantine_slots=512:handle_segv=0")};
  Run run(shared, 32);
  std::atomic<std::uint64_t> private_errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int c = 0; c < kCycles; ++c) {
        guarded_resource mine{this->opts("quarantine_slots=64:reserve_size=1G:handle_segv=0")};
        std::mt19937_64 rng(static_cast<unsigned>(t * 1000 + c));
        std::vector<Block> blocks;
        for (int i = 0; i < 200; ++i) {
          Block b;
          b.size = rng() % 2048;
          b.align = 16;
          b.tag = (static_cast<std::uint64_t>(t) << 32 | static_cast<std::uint64_t>(i)) | 1;
          b.p = static_cast<unsigned char*>(mine.allocate(b.size, b.align));
          fill(b);
          blocks.push_back(b);
          if (i % 4 == 0) run.worker(static_cast<unsigned>(t * 100000 + c * 1000 + i), 8, true);
        }
        for (const Block& b : blocks) {
          if (!intact(b)) private_errors.fetch_add(1);
          mine.deallocate(b.p, b.size, b.align);
        }
        arena_stats s = mine.stats();
        if (s.live_blocks != 0 || s.guarded_allocations != 200) private_errors.fetch_add(1);
      }
    });
  }
  for (auto& th : pool) th.join();
  run.drain_handoff(true);
  EXPECT_EQ(private_errors.load(), 0u);
  EXPECT_EQ(run.errors(), 0u);
  arena_stats s = shared.stats();
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.guarded_allocations + s.fallback_allocations, run.allocations());
}

// Per-request resources: the main thread creates one, workers allocate and
// free from it, then the main thread destroys it while the workers move on to
// a shared resource (their caches still point at the dying one); every fourth
// round it release()s the shared resource while the workers switch away from
// it to the next request's. Hand-backs into the destroyed or released arena
// used to race with it (TSan). Nobody uses a resource while it is destroyed or
// released: only the workers' caches still name it.
TYPED_TEST(ArenaStressTest, ResourcesDestroyedWhileOtherThreadsStillCacheThem) {
  constexpr int kWorkers = 3;
  const int rounds = 2000 / kScale;
  guarded_resource shared{this->opts("quarantine_slots=256:handle_segv=0")};
  const std::string per_request = this->opts("quarantine_slots=64:reserve_size=256M:handle_segv=0");
  auto current = std::make_unique<guarded_resource>(per_request);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> errors{0};
  std::barrier sync(kWorkers + 1);
  std::vector<std::thread> workers;
  for (int t = 0; t < kWorkers; ++t) {
    workers.emplace_back([&, t] {
      for (;;) {
        sync.arrive_and_wait();  // A: `current` is ready
        if (stop.load()) return;
        for (int i = 0; i < 8; ++i) {
          std::size_t size = static_cast<std::size_t>(16 + 8 * (i + t));
          auto* p = static_cast<unsigned char*>(current->allocate(size, 16));
          std::memset(p, i, size);
          if (p[size - 1] != i) errors.fetch_add(1);
          current->deallocate(p, size, 16);
        }
        sync.arrive_and_wait();             // B: done with `current`
        void* q = shared.allocate(64, 16);  // switches the cache while `current` dies
        shared.deallocate(q, 64, 16);
        (void)shared.stats();    // folds this thread's counters
        sync.arrive_and_wait();  // C: done with `shared`
      }
    });
  }
  for (int round = 0; round < rounds; ++round) {
    sync.arrive_and_wait();                // A
    if (round % 4 == 3) shared.release();  // while the workers' caches leave it
    sync.arrive_and_wait();                // B
    current.reset();                       // while the workers' caches leave it
    sync.arrive_and_wait();                // C
    current = std::make_unique<guarded_resource>(per_request);
  }
  stop.store(true);
  sync.arrive_and_wait();
  for (auto& w : workers) w.join();
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_EQ(shared.stats().live_blocks, 0u);
  EXPECT_EQ(current->stats().live_blocks, 0u);
  std::printf(
      "[ figures  ] %s: %d resources created, used by %d workers, destroyed under their "
      "caches; %d release()s likewise\n",
      TypeParam::kOptions, rounds, kWorkers, rounds / 4);
}

// Fast mode counts a thread's allocations in its cache and folds them in
// later; a block freed by another thread that folds first made the global
// count wrap below zero, and that wrapped value became peak_live_blocks for
// good (2^64 - 4 here) and was what stats() showed in between.
TEST(FastModeStressTest, CrossThreadFreeBeforeTheAllocatorFoldsKeepsStatsInRange) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  guarded_resource r{"mode=fast:backend=guard:handle_segv=0"};
  std::vector<void*> blocks;
  arena_stats between{}, after{};
  std::thread producer([&] {
    for (int i = 0; i < 4; ++i) blocks.push_back(r.allocate(64, 16));  // not folded yet
    std::thread consumer([&] {
      for (void* p : blocks) r.deallocate(p, 64, 16);
    });
    consumer.join();  // its exit folds the four frees
    std::thread observer([&] { between = r.stats(); });
    observer.join();
    after = r.stats();  // folds the four allocations
  });
  producer.join();
  EXPECT_LE(between.live_blocks, 4u);
  EXPECT_LE(between.live_bytes, 256u);
  EXPECT_EQ(after.live_blocks, 0u);
  EXPECT_LE(after.peak_live_blocks, 4u);
  EXPECT_LE(after.peak_live_bytes, 256u);
  EXPECT_EQ(after.guarded_allocations, 4u);
}

}  // namespace
}  // namespace guardarena
