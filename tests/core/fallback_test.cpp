// core/fallback.h: the set of unguarded blocks and the exhaustion policy.
#include "core/fallback.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace guardarena {
namespace {

int g_allocated = 0;
int g_freed = 0;
void* counting_allocate(void*, std::size_t size, std::size_t align) noexcept {
  ++g_allocated;
  void* p = nullptr;
  return ::posix_memalign(&p, align, size) == 0 ? p : nullptr;
}
void counting_deallocate(void*, void* p) noexcept {
  ++g_freed;
  std::free(p);
}
void* refusing_allocate(void*, std::size_t, std::size_t) noexcept {
  return nullptr;
}

class FallbackBlocksTest : public ::testing::Test {
 protected:
  void SetUp() override { g_allocated = g_freed = 0; }
  void TearDown() override { blocks_.destroy(); }
  FallbackBlocks blocks_;
};

TEST_F(FallbackBlocksTest, FailPolicyAnswersNullWithoutAsking) {
  ASSERT_TRUE(blocks_.init(Exhaustion::kFail, {counting_allocate, counting_deallocate}));
  EXPECT_EQ(blocks_.serve(64, 16, false, "test"), nullptr);
  EXPECT_EQ(g_allocated, 0);
  EXPECT_EQ(blocks_.failed(), 1u);
  EXPECT_EQ(blocks_.served(), 0u);
}

TEST_F(FallbackBlocksTest, RefusedRequestCountsAsFailed) {
  ASSERT_TRUE(blocks_.init(Exhaustion::kFallback, {refusing_allocate, counting_deallocate}));
  EXPECT_EQ(blocks_.serve(64, 16, false, "test"), nullptr);
  EXPECT_EQ(blocks_.failed(), 1u);
}

TEST_F(FallbackBlocksTest, ServedBlockIsTrackedUntilFreed) {
  ASSERT_TRUE(blocks_.init(Exhaustion::kFallback, {counting_allocate, counting_deallocate}));
  void* p = blocks_.serve(100, 64, true, "test");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(static_cast<unsigned char*>(p)[i], 0);
  auto a = reinterpret_cast<std::uintptr_t>(p);
  EXPECT_TRUE(blocks_.contains(a));
  EXPECT_EQ(blocks_.live(), 1u);
  EXPECT_EQ(blocks_.served(), 1u);
  EXPECT_TRUE(blocks_.free_if_ours(a));
  EXPECT_EQ(g_freed, 1);
  EXPECT_FALSE(blocks_.contains(a));
  EXPECT_EQ(blocks_.live(), 0u);
}

TEST_F(FallbackBlocksTest, ForeignPointerIsLeftAlone) {
  ASSERT_TRUE(blocks_.init(Exhaustion::kFallback, {counting_allocate, counting_deallocate}));
  void* p = blocks_.serve(32, 16, false, "test");
  static char foreign[16];
  EXPECT_FALSE(blocks_.free_if_ours(reinterpret_cast<std::uintptr_t>(foreign)));
  EXPECT_EQ(g_freed, 0);
  EXPECT_TRUE(blocks_.free_if_ours(reinterpret_cast<std::uintptr_t>(p)));
}

TEST_F(FallbackBlocksTest, ReleaseAllFreesEveryBlock) {
  ASSERT_TRUE(blocks_.init(Exhaustion::kFallback, {counting_allocate, counting_deallocate}));
  for (int i = 0; i < 10; ++i) ASSERT_NE(blocks_.serve(16, 16, false, "test"), nullptr);
  blocks_.release_all();
  EXPECT_EQ(g_freed, 10);
  EXPECT_EQ(blocks_.live(), 0u);
}

// An address set that reuses its slots: lookups of absent addresses end
// however many distinct addresses came and went (no tombstones fill it).
TEST(FallbackSetTest, LookupsEndAfterManyDistinctAddressesCameAndWent) {
  FallbackSet set;
  ASSERT_TRUE(set.init(1024));
  for (std::uintptr_t i = 1; i <= 100000; ++i) {
    ASSERT_TRUE(set.insert(i * 16));
    ASSERT_TRUE(set.erase(i * 16));
  }
  EXPECT_FALSE(set.contains(0x123450));
  EXPECT_EQ(set.size(), 0u);
  set.destroy();
}

TEST(FallbackSetTest, GrowsAndKeepsEveryMember) {
  FallbackSet set;
  ASSERT_TRUE(set.init(64));
  for (std::uintptr_t i = 1; i <= 5000; ++i) ASSERT_TRUE(set.insert(i * 48));
  for (std::uintptr_t i = 1; i <= 5000; ++i) ASSERT_TRUE(set.contains(i * 48)) << i;
  EXPECT_FALSE(set.contains(49));
  // Erasing every other member keeps the rest findable (backward shifts).
  for (std::uintptr_t i = 1; i <= 5000; i += 2) ASSERT_TRUE(set.erase(i * 48));
  for (std::uintptr_t i = 2; i <= 5000; i += 2) ASSERT_TRUE(set.contains(i * 48)) << i;
  for (std::uintptr_t i = 1; i <= 5000; i += 2) ASSERT_FALSE(set.contains(i * 48)) << i;
  EXPECT_EQ(set.size(), 2500u);
  std::size_t drained = 0;
  set.drain([&](std::uintptr_t) { ++drained; });
  EXPECT_EQ(drained, 2500u);
  set.destroy();
}

}  // namespace
}  // namespace guardarena
