// Scale and exhaustion through the public resource: a million live blocks on
// the guard-region backend, and the VMA budget of the mprotect backend
// handled by on_exhaustion (fallback and fail) without a crash.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "os/os_linux.h"
#include "test_support.h"

namespace guardarena {
namespace {

long max_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

TEST(ScaleTest, OneMillionLive64ByteBlocksOnTheGuardBackend) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  guarded_resource r{"backend=guard"};
  constexpr std::size_t kBlocks = 1000000;
  std::vector<unsigned char*> blocks(kBlocks);
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < kBlocks; ++i) {
    blocks[i] = static_cast<unsigned char*>(r.allocate(64, 16));
    blocks[i][0] = static_cast<unsigned char>(i);
  }
  auto t1 = std::chrono::steady_clock::now();
  arena_stats s = r.stats();
  EXPECT_EQ(s.live_blocks, kBlocks);
  EXPECT_EQ(s.fallback_allocations, 0u);
  for (std::size_t i = 0; i < kBlocks; i += 997)
    EXPECT_EQ(blocks[i][0], static_cast<unsigned char>(i));
  // Guard markers split no VMA: the process keeps a handful of mappings.
  EXPECT_LT(os::count_mappings(), 1000u);
  std::printf(
      "[ figures  ] 1,000,000 live 64-byte blocks (guard backend): %.2f s to allocate, peak RSS "
      "%ld MiB\n",
      std::chrono::duration<double>(t1 - t0).count(), max_rss_kib() / 1024);
  r.release();
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

std::size_t budget_probe_count() {
  // Comfortably past the ~32K blocks vm.max_map_count allows by default.
  return os::max_map_count() / 2 + 5000;
}

TEST(ScaleTest, MprotectBudgetFallsBackToUnguardedBlocks) {
  guarded_resource r{"backend=mprotect:on_exhaustion=fallback"};
  std::size_t n = budget_probe_count();
  std::vector<unsigned char*> blocks(n);
  ::testing::internal::CaptureStderr();
  for (std::size_t i = 0; i < n; ++i) {
    blocks[i] = static_cast<unsigned char*>(r.allocate(64, 16));
    std::memset(blocks[i], static_cast<int>(i & 0xff), 64);
  }
  std::string err = ::testing::internal::GetCapturedStderr();
  arena_stats s = r.stats();
  EXPECT_GT(s.fallback_allocations, 0u);
  EXPECT_EQ(s.live_blocks + s.fallback_live, n);
  EXPECT_LT(s.vmas_in_use, os::max_map_count());
  // Warned once, with advice.
  EXPECT_NE(err.find("vm.max_map_count"), std::string::npos) << err;
  EXPECT_EQ(err.find("warning"), err.rfind("warning")) << err;
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(blocks[i][63], static_cast<unsigned char>(i & 0xff));
  // Fallback blocks are recognised on the way back.
  for (std::size_t i = 0; i < n; ++i) r.deallocate(blocks[i], 64, 16);
  EXPECT_EQ(r.stats().fallback_live, 0u);
  EXPECT_EQ(r.stats().live_blocks, 0u);
  // With the islands closed, guarded blocks are available again.
  std::uint64_t guarded_before = r.stats().guarded_allocations;
  void* p = r.allocate(64, 16);
  EXPECT_EQ(r.stats().guarded_allocations, guarded_before + 1);
  r.deallocate(p, 64, 16);
}

TEST(ScaleTest, FallbackBlocksAreTrackedPastTheInitialTableSize) {
  // The fallback registry starts small and must grow: a program that runs
  // out of guard pages may fall back for millions of blocks.
  guarded_resource r{"backend=mprotect:on_exhaustion=fallback"};
  std::size_t n = budget_probe_count() + 120000;
  std::vector<void*> blocks(n);
  ::testing::internal::CaptureStderr();
  for (std::size_t i = 0; i < n; ++i) {
    blocks[i] = r.allocate(16, 16);
    ASSERT_NE(blocks[i], nullptr);
  }
  (void)::testing::internal::GetCapturedStderr();
  EXPECT_GT(r.stats().fallback_live, 100000u);
  for (void* p : blocks) EXPECT_TRUE(r.owns(p));
  for (void* p : blocks) r.deallocate(p, 16, 16);
  EXPECT_EQ(r.stats().fallback_live, 0u);
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

TEST(ScaleTest, MprotectBudgetFailsCleanlyWithFailPolicy) {
  guarded_resource r{"backend=mprotect:on_exhaustion=fail"};
  std::size_t n = budget_probe_count();
  std::vector<void*> blocks;
  bool threw = false;
  for (std::size_t i = 0; i < n; ++i) {
    try {
      blocks.push_back(r.allocate(64, 16));
    } catch (const std::bad_alloc&) {
      threw = true;
      break;
    }
  }
  EXPECT_TRUE(threw);
  EXPECT_GT(blocks.size(), 10000u);
  EXPECT_EQ(r.stats().fallback_allocations, 0u);
  EXPECT_GE(r.stats().failed_allocations, 1u);
  // Existing blocks are intact and can be freed; then allocation works again.
  for (void* p : blocks) static_cast<char*>(p)[0] = 1;
  for (void* p : blocks) r.deallocate(p, 64, 16);
  void* p = r.allocate(64, 16);
  r.deallocate(p, 64, 16);
}

TEST(ScaleTest, ImpossibleSizesThrowBadAlloc) {
  guarded_resource r{"on_exhaustion=fail"};
  // Through a volatile: GCC rejects a constant SIZE_MAX passed to allocate()
  // (alloc_size attribute) at -O0 with -Werror, the ASan Debug build.
  volatile std::size_t huge = SIZE_MAX;
  EXPECT_THROW((void)r.allocate(huge, 16), std::bad_alloc);
  EXPECT_THROW((void)r.allocate(huge / 2, 16), std::bad_alloc);
  EXPECT_THROW((void)r.allocate(1u << 30, std::size_t{1} << 60), std::bad_alloc);
  void* p = r.allocate(64, 16);  // still works
  r.deallocate(p, 64, 16);
}

TEST(ScaleTest, AddressSpaceExhaustionFallsBack) {
  // A tiny reservation runs out of chunks quickly.
  guarded_resource r{"reserve_size=256M:on_exhaustion=fallback:quarantine_slots=0"};
  std::vector<void*> blocks;
  for (int i = 0; i < 12; ++i) blocks.push_back(r.allocate(60u << 20, 16));
  EXPECT_GT(r.stats().fallback_allocations, 0u);
  for (void* p : blocks) r.deallocate(p, 60u << 20, 16);
  EXPECT_EQ(r.stats().fallback_live, 0u);
}

}  // namespace
}  // namespace guardarena
