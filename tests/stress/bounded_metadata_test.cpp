// The allocator's own memory stays bounded over long runs: the stack depot
// stops at depot_size however many distinct stacks come by, and RSS and the
// number of mappings stay flat across many resource create/destroy cycles and
// many allocate/free cycles, in every mode and on both backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "test_support.h"
#include "os/os_linux.h"
#include "report/report.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GA_BOUNDED_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GA_BOUNDED_SANITIZER 1
#endif
#endif
#ifndef GA_BOUNDED_SANITIZER
#define GA_BOUNDED_SANITIZER 0
#endif

namespace guardarena {
namespace {

constexpr int kScale = GA_BOUNDED_SANITIZER ? 8 : 1;

std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * os::page_size();
}

// --- Stack depot -----------------------------------------------------------

volatile int g_sink = 0;

// Two functions calling each other by the bits of `path`: every path is a
// distinct allocation stack (return addresses differ per call site), 2^levels
// of them. Different bodies so identical-code folding cannot merge them.
void* path_b(guarded_resource& r, unsigned path, int level);
[[gnu::noinline]] void* path_a(guarded_resource& r, unsigned path, int level) {
  void* p = level == 0   ? r.allocate(32, 16)
            : (path & 1) ? path_a(r, path >> 1, level - 1)
                         : path_b(r, path >> 1, level - 1);
  g_sink = g_sink + 1;  // after the call: no tail call, the frame stays
  return p;
}
[[gnu::noinline]] void* path_b(guarded_resource& r, unsigned path, int level) {
  void* p = level == 0   ? r.allocate(32, 16)
            : (path & 1) ? path_a(r, path >> 1, level - 1)
                         : path_b(r, path >> 1, level - 1);
  g_sink = g_sink + 2;
  return p;
}

TEST(BoundedMetadataTest, DepotStopsGrowingAtDepotSizeUnderManyDistinctStacks) {
  constexpr std::size_t kDepot = 64 << 10;
  guarded_resource r{"stack_depth=16:depot_size=64K:handle_segv=0"};
  stack::StackDepotStats s0 = report::depot_stats();
  if (s0.capacity_bytes != kDepot) {
    GTEST_SKIP() << "the depot was sized by an earlier resource in this process ("
                 << s0.capacity_bytes << " bytes); run this test alone (ctest does)";
  }
  constexpr int kLevels = 12;  // 4096 distinct allocation stacks per round
  std::vector<std::size_t> entries_after_round;
  for (int round = 0; round < 3; ++round) {
    for (unsigned path = 0; path < (1u << kLevels); ++path) {
      void* p = path_a(r, path, kLevels);
      r.deallocate(p, 32, 16);
    }
    stack::StackDepotStats s = report::depot_stats();
    entries_after_round.push_back(s.entries);
    EXPECT_LE(s.bytes_used, s.capacity_bytes);
  }
  stack::StackDepotStats s = report::depot_stats();
  std::printf(
      "[ figures  ] depot_size=64K: %zu entries, %zu of %zu bytes, %llu drops after "
      "3 x 4096 distinct allocation stacks\n",
      s.entries, s.bytes_used, s.capacity_bytes, static_cast<unsigned long long>(s.drops));
  EXPECT_GT(s.drops, 0u) << "the test did not offer more stacks than fit";
  EXPECT_LT(s.entries, std::size_t{4096});
  // Full after the first round; the later rounds add nothing.
  EXPECT_EQ(entries_after_round[1], entries_after_round[0]);
  EXPECT_EQ(entries_after_round[2], entries_after_round[0]);
  // Stacks that made it in are still found and blocks still work.
  void* p = path_a(r, 0, kLevels);
  EXPECT_TRUE(r.owns(p));
  r.deallocate(p, 32, 16);
}

// --- RSS and mappings --------------------------------------------------------

using testing::ConfigNames;
using testing::FastGuard;
using testing::FastMprotect;
using testing::FullGuard;
using testing::FullMprotect;
using Configs = testing::ModeBackendConfigs;

template <class C>
using FootprintTest = testing::ModeBackendTest<C>;
TYPED_TEST_SUITE(FootprintTest, Configs, ConfigNames);

// One short life of a resource: blocks of mixed sizes, some freed, a
// release() now and then, the rest left to the destructor.
void one_lifetime(const std::string& opts, std::mt19937_64& rng, bool release) {
  guarded_resource r{opts};
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (int i = 0; i < 64; ++i) {
    std::size_t size = rng() % 3 == 0 ? rng() % (64 << 10) : rng() % 512;
    void* p = r.allocate(size, 16);
    std::memset(p, i, std::min<std::size_t>(size, 64));
    blocks.push_back({p, size});
  }
  for (std::size_t i = 0; i < blocks.size(); i += 2)
    r.deallocate(blocks[i].first, blocks[i].second, 16);
  if (release) r.release();
}

TYPED_TEST(FootprintTest, CreateDestroyCyclesKeepRssAndMappingsFlat) {
  const std::string opts = this->opts("reserve_size=1G:handle_segv=0");
  std::mt19937_64 rng(42);
  const int cycles = 1000 / kScale;
  for (int i = 0; i < 50; ++i) one_lifetime(opts, rng, i % 5 == 0);  // warm-up
  std::size_t rss0 = rss_bytes();
  std::size_t maps0 = os::count_mappings();
  for (int i = 0; i < cycles; ++i) one_lifetime(opts, rng, i % 5 == 0);
  std::size_t rss1 = rss_bytes();
  std::size_t maps1 = os::count_mappings();
  std::printf("[ figures  ] %s: %d resource lifetimes: RSS %zu -> %zu KiB, mappings %zu -> %zu\n",
              TypeParam::kOptions, cycles, rss0 >> 10, rss1 >> 10, maps0, maps1);
  EXPECT_LT(rss1, rss0 + (4u << 20));
  EXPECT_LE(maps1, maps0 + 2);
}

TYPED_TEST(FootprintTest, AllocateFreeCyclesKeepRssAndMappingsFlat) {
  guarded_resource r{this->opts("handle_segv=0")};
  std::mt19937_64 rng(7);
  std::vector<std::pair<void*, std::size_t>> live(1000, {nullptr, 0});
  const std::size_t ops =
      (std::string(TypeParam::kOptions).find("fast") != std::string::npos ? 2000000 : 500000) /
      kScale;
  auto churn = [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto& slot = live[rng() % live.size()];
      if (slot.first != nullptr) r.deallocate(slot.first, slot.second, 16);
      std::size_t size = rng() % 8 == 0 ? rng() % (64 << 10) : rng() % 1024;
      slot = {r.allocate(size, 16), size};
      std::memset(slot.first, 1, std::min<std::size_t>(size, 256));
    }
  };
  churn(ops / 5);  // warm-up: quarantine and free lists fill to their bounds
  std::size_t rss0 = rss_bytes();
  std::size_t maps0 = os::count_mappings();
  churn(ops);
  std::size_t rss1 = rss_bytes();
  std::size_t maps1 = os::count_mappings();
  arena_stats s = r.stats();
  std::printf(
      "[ figures  ] %s: %zu allocate/free pairs, 1000 live: RSS %zu -> %zu KiB, "
      "mappings %zu -> %zu, quarantine %llu blocks\n",
      TypeParam::kOptions, ops + ops / 5, rss0 >> 10, rss1 >> 10, maps0, maps1,
      static_cast<unsigned long long>(s.quarantined_blocks));
  EXPECT_LT(rss1, rss0 + (16u << 20));
  // The mprotect backend opens a mapping pair per live block; the count
  // moves with the live set's layout but must not drift upwards.
  EXPECT_LT(maps1, maps0 + 200);
  for (auto& b : live) r.deallocate(b.first, b.second, 16);
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

}  // namespace
}  // namespace guardarena
