// The memory budget through the pmr resource, in every mode x backend: past
// max_guarded_memory the resource keeps serving (a sample guarded, the rest
// from the upstream) and the process's resident memory, as the kernel counts
// it, stays within the budget plus what the upstream uses; with
// on_exhaustion=fail it throws std::bad_alloc instead; a budget never
// reached changes nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <new>
#include <thread>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "test_support.h"

namespace guardarena {
namespace {

template <class C>
class MemoryBudgetTest : public testing::ModeBackendTest<C> {};
TYPED_TEST_SUITE(MemoryBudgetTest, testing::ModeBackendConfigs, testing::ConfigNames);

constexpr std::uint64_t kMiB = 1ull << 20;

// Resident set size now, from the kernel (/proc/self/statm), in bytes.
std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

TYPED_TEST(MemoryBudgetTest, PastTheBudgetBlocksComeFromUpstreamAndResidentMemoryStaysBounded) {
  // The peak of guarded memory is the process's: tests run before this one
  // in the same process (not under CTest, which runs each alone) may have
  // set it higher.
  const std::uint64_t peak_before =
      guarded_resource{this->opts("")}.stats().peak_guarded_resident_bytes;
  const std::uint64_t rss_before = resident_bytes();
  guarded_resource r{this->opts("max_guarded_memory=32M")};
  // 20,000 live blocks would need about 80 MiB guarded.
  constexpr std::size_t kBlocks = 20000;
  std::vector<unsigned char*> blocks(kBlocks);
  for (std::size_t i = 0; i < kBlocks; ++i) {
    blocks[i] = static_cast<unsigned char*>(r.allocate(32, 16));
    std::memset(blocks[i], static_cast<int>(i & 0xff), 32);
  }
  const std::uint64_t rss_live = resident_bytes();
  for (std::size_t i = 0; i < kBlocks; ++i) {
    ASSERT_EQ(blocks[i][0], i & 0xff);
    ASSERT_EQ(blocks[i][31], i & 0xff);
  }
  const arena_stats s = r.stats();
  EXPECT_EQ(s.memory_budget, 32 * kMiB);
  EXPECT_STREQ(s.memory_budget_source, "option");
  EXPECT_GT(s.unguarded_at_limit, 0u);
  EXPECT_GT(s.guard_sample_rate, 1u);
  EXPECT_LE(s.guarded_resident_bytes, 32 * kMiB);
  EXPECT_LE(s.peak_guarded_resident_bytes, std::max(peak_before, 32 * kMiB));
  EXPECT_GT(s.guarded_allocations, 1000u);
  EXPECT_EQ(s.fallback_live, s.unguarded_at_limit);
  // The budget, the upstream's 20,000 small blocks (~1 MiB) and the
  // resource's own bookkeeping; unbounded it would be 80 MiB more.
  EXPECT_LE(rss_live, rss_before + 32 * kMiB + 12 * kMiB)
      << "before " << rss_before / kMiB << " MiB, with the blocks " << rss_live / kMiB << " MiB";
  for (unsigned char* p : blocks) r.deallocate(p, 32, 16);
  EXPECT_EQ(r.stats().fallback_live, 0u);
}

// Threads crossing the budget together: every block is usable and goes back
// its own way, and the counts balance once the threads are gone.
TYPED_TEST(MemoryBudgetTest, ThreadsPastTheBudgetKeepEveryBlockAndBalance) {
  guarded_resource r{this->opts("max_guarded_memory=16M")};
  constexpr int kThreads = 4;
  constexpr std::size_t kBlocks = 3000;  // 12,000 in all, about 48 MiB guarded
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, &bad, t] {
      std::vector<unsigned char*> mine(kBlocks);
      for (std::size_t i = 0; i < kBlocks; ++i) {
        mine[i] = static_cast<unsigned char*>(r.allocate(48, 16));
        std::memset(mine[i], t * 16 + static_cast<int>(i % 16), 48);
      }
      for (std::size_t i = 0; i < kBlocks; ++i) {
        if (mine[i][47] != t * 16 + static_cast<int>(i % 16)) bad.fetch_add(1);
        r.deallocate(mine[i], 48, 16);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  const arena_stats s = r.stats();
  EXPECT_GT(s.unguarded_at_limit, 0u);
  EXPECT_EQ(s.fallback_live, 0u);
  EXPECT_EQ(s.live_blocks, 0u);
  // The depot is weighed when a slot opens; stacks stored after the last
  // opening (distinct free stacks) may take it a little past the budget.
  EXPECT_LE(s.guarded_resident_bytes, 17 * kMiB);
}

TYPED_TEST(MemoryBudgetTest, FailPolicyThrowsBadAllocAtTheBudget) {
  guarded_resource r{this->opts("max_guarded_memory=8M:on_exhaustion=fail")};
  std::vector<void*> blocks;
  bool threw = false;
  for (int i = 0; i < 4000 && !threw; ++i) {
    try {
      blocks.push_back(r.allocate(32, 16));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
  }
  EXPECT_TRUE(threw);
  // 8 MiB hold about 2,000 one-page blocks.
  EXPECT_GT(blocks.size(), 1000u);
  EXPECT_LT(blocks.size(), 2100u);
  const arena_stats s = r.stats();
  EXPECT_EQ(s.unguarded_at_limit, 0u);
  EXPECT_EQ(s.guard_sample_rate, 1u);
  EXPECT_EQ(s.fallback_allocations, 0u);
  EXPECT_GE(s.failed_allocations, 1u);
  for (void* p : blocks) r.deallocate(p, 32, 16);
}

TYPED_TEST(MemoryBudgetTest, TheRateComesBackDownAsGuardedMemoryIsFreed) {
  // A small fast-mode quarantine: freed blocks give their memory back.
  guarded_resource r{this->opts("max_guarded_memory=32M:fast_quarantine_bytes=1M")};
  std::vector<void*> blocks;
  for (int i = 0; i < 12000; ++i) blocks.push_back(r.allocate(32, 16));
  ASSERT_GT(r.stats().guard_sample_rate, 1u);
  for (void* p : blocks) r.deallocate(p, 32, 16);
  // Each guarded allocation that finds the budget under three quarters
  // used halves the rate.
  for (int i = 0; i < 60000 && r.stats().guard_sample_rate > 1; ++i)
    r.deallocate(r.allocate(32, 16), 32, 16);
  EXPECT_EQ(r.stats().guard_sample_rate, 1u) << "resident " << r.stats().guarded_resident_bytes;
}

TYPED_TEST(MemoryBudgetTest, ABudgetNeverReachedChangesNothing) {
  guarded_resource r{this->opts("max_guarded_memory=1G")};
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(r.allocate(32, 16));
  const arena_stats s = r.stats();
  EXPECT_EQ(s.unguarded_at_limit, 0u);
  EXPECT_EQ(s.guard_sample_rate, 1u);
  EXPECT_EQ(s.fallback_allocations, 0u);
  EXPECT_GE(s.guarded_resident_bytes, 1000u * 4096u);
  for (void* p : blocks) r.deallocate(p, 32, 16);
}

TYPED_TEST(MemoryBudgetTest, ReleaseGivesTheBudgetBack) {
  guarded_resource r{this->opts("max_guarded_memory=8M")};
  for (int i = 0; i < 4000; ++i) static_cast<void>(r.allocate(32, 16));
  ASSERT_GT(r.stats().guard_sample_rate, 1u);
  r.release();
  const arena_stats s = r.stats();
  EXPECT_EQ(s.guard_sample_rate, 1u);
  EXPECT_LT(s.guarded_resident_bytes, 2 * kMiB);  // the stack depot stays
}

}  // namespace
}  // namespace guardarena
