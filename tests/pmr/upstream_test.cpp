// guarded_resource on an upstream resource, as the standard resources are:
// the blocks its options leave unguarded come from the upstream and every
// block goes back to the resource it came from.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <new>
#include <utility>
#include <vector>

#include "guardarena/guardarena.hpp"

namespace guardarena {
namespace {

// Counts what it hands out and checks that each block comes back once, with
// the size and alignment it was asked for.
class CountingUpstream : public std::pmr::memory_resource {
 public:
  std::map<void*, std::pair<std::size_t, std::size_t>> live;
  std::size_t allocations = 0;
  std::size_t bad_deallocations = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    void* p = std::pmr::new_delete_resource()->allocate(bytes, align);
    live.emplace(p, std::pair{bytes, align});
    ++allocations;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    auto it = live.find(p);
    if (it == live.end() || it->second != std::pair{bytes, align}) {
      ++bad_deallocations;
      return;
    }
    live.erase(it);
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override {
    return this == &o;
  }
};

TEST(UpstreamTest, OneInNIsGuardedAndTheRestComesFromTheUpstream) {
  CountingUpstream up;
  guarded_resource r{"sample_rate=4", &up};
  std::vector<void*> blocks;
  std::size_t guarded = 0;
  for (int i = 0; i < 800; ++i) {
    void* p = r.allocate(64, 16);
    const bool ours = r.owns(p);
    const bool upstream = up.live.count(p) != 0;
    EXPECT_NE(ours, upstream) << "block " << i << " must come from exactly one place";
    guarded += ours ? 1 : 0;
    blocks.push_back(p);
  }
  // 1 in 4 of 800: 200 expected; the bounds are 7 standard deviations wide.
  EXPECT_GT(guarded, 115u);
  EXPECT_LT(guarded, 285u);
  EXPECT_EQ(up.allocations, 800u - guarded);
  EXPECT_EQ(r.stats().live_blocks, guarded);
  for (void* p : blocks) r.deallocate(p, 64, 16);
  EXPECT_TRUE(up.live.empty());
  EXPECT_EQ(up.bad_deallocations, 0u);
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

TEST(UpstreamTest, MinAndMaxSizeChooseWhatIsGuarded) {
  CountingUpstream up;
  guarded_resource r{"min_size=1K:max_size=4K", &up};
  void* small = r.allocate(100, 8);
  void* medium = r.allocate(2048, 8);
  void* large = r.allocate(8192, 8);
  EXPECT_FALSE(r.owns(small));
  EXPECT_TRUE(r.owns(medium));
  EXPECT_FALSE(r.owns(large));
  EXPECT_EQ(up.live.size(), 2u);
  r.deallocate(small, 100, 8);
  r.deallocate(medium, 2048, 8);
  r.deallocate(large, 8192, 8);
  EXPECT_TRUE(up.live.empty());
  EXPECT_EQ(up.bad_deallocations, 0u);
}

TEST(UpstreamTest, ReleaseReturnsTheUpstreamBlocksToo) {
  CountingUpstream up;
  guarded_resource r{"sample_rate=2", &up};
  for (int i = 0; i < 100; ++i) (void)r.allocate(32 + i, 8);
  ASSERT_FALSE(up.live.empty());
  ASSERT_GT(r.stats().live_blocks, 0u);
  r.release();
  EXPECT_TRUE(up.live.empty());
  EXPECT_EQ(up.bad_deallocations, 0u);
  EXPECT_EQ(r.stats().live_blocks, 0u);
  // And the resource is usable after it.
  void* p = r.allocate(64, 8);
  r.deallocate(p, 64, 8);
}

TEST(UpstreamTest, DestructionReturnsTheUpstreamBlocks) {
  CountingUpstream up;
  {
    guarded_resource r{"sample_rate=3", &up};
    for (int i = 0; i < 60; ++i) (void)r.allocate(48, 16);
    ASSERT_FALSE(up.live.empty());
  }
  EXPECT_TRUE(up.live.empty());
  EXPECT_EQ(up.bad_deallocations, 0u);
}

// on_exhaustion=fallback: a block no guard page is left for comes from the
// upstream too.
TEST(UpstreamTest, ExhaustionFallbackComesFromTheUpstream) {
  CountingUpstream up;
  guarded_resource r{"reserve_size=256M:on_exhaustion=fallback", &up};
  const std::size_t size = std::size_t{300} << 20;
  void* p = r.allocate(size, 16);
  EXPECT_EQ(up.live.count(p), 1u);
  EXPECT_EQ(r.stats().fallback_live, 1u);
  r.deallocate(p, size, 16);
  EXPECT_TRUE(up.live.empty());
  EXPECT_EQ(up.bad_deallocations, 0u);
  EXPECT_EQ(r.stats().fallback_live, 0u);
}

// Sizes no object can have never reach the upstream: libstdc++'s aligned
// operator new, under new_delete_resource, wraps them to a tiny block.
TEST(UpstreamTest, ImpossibleSizesThrowBadAlloc) {
  guarded_resource r{"max_size=1K", std::pmr::new_delete_resource()};
  for (std::size_t size : {SIZE_MAX, SIZE_MAX - 8, std::size_t{1} << 63}) {
    EXPECT_THROW((void)r.allocate(size, 16), std::bad_alloc) << size;
  }
}

TEST(UpstreamTest, TheUpstreamIsMallocUnlessGiven) {
  CountingUpstream up;
  guarded_resource given{"", &up};
  EXPECT_EQ(given.upstream_resource(), &up);
  // Not the default resource: a guarded resource made the default must not
  // become the upstream of the next one.
  guarded_resource first;
  scoped_default_resource scope{&first};
  guarded_resource defaulted{"max_size=1K"};
  ASSERT_NE(defaulted.upstream_resource(), nullptr);
  EXPECT_NE(defaulted.upstream_resource(), &first);
  void* big = defaulted.allocate(4096, 16);
  EXPECT_FALSE(defaulted.owns(big));
  EXPECT_FALSE(first.owns(big));
  defaulted.deallocate(big, 4096, 16);
  unsynchronized_guarded_resource local{"sample_rate=2", &up};
  EXPECT_EQ(local.upstream_resource(), &up);
}

TEST(UpstreamTest, ScopedDefaultResourceGuardsContainersAndRestores) {
  std::pmr::memory_resource* before = std::pmr::get_default_resource();
  guarded_resource guarded;
  {
    scoped_default_resource scope{&guarded};
    EXPECT_EQ(std::pmr::get_default_resource(), &guarded);
    EXPECT_EQ(scope.previous(), before);
    std::pmr::vector<int> v{1, 2, 3};
    EXPECT_TRUE(guarded.owns(v.data()));
  }
  EXPECT_EQ(std::pmr::get_default_resource(), before);
}

}  // namespace
}  // namespace guardarena
