// Tests for StackDepot: round trips, deduplication, the capacity bound, ids
// that do not name a stack, and concurrent stores and loads.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "stack/stack_trace.h"

namespace guardarena::stack {
namespace {

// A deterministic fake stack: `depth` frames derived from `seed`.
std::vector<std::uintptr_t> fake_stack(std::uint64_t seed, std::size_t depth = 12) {
  std::vector<std::uintptr_t> pcs(depth);
  for (std::size_t i = 0; i < depth; ++i) pcs[i] = 0x400000 + seed * 0x1000 + i * 0x10;
  return pcs;
}

class StackDepotTest : public ::testing::Test {
 protected:
  void TearDown() override { depot_.release(); }
  StackDepot depot_;
};

TEST_F(StackDepotTest, InitRejectsTinyCapacityAndSecondInit) {
  EXPECT_FALSE(depot_.init(1024));
  EXPECT_FALSE(depot_.initialized());
  ASSERT_TRUE(depot_.init(1 << 20));
  EXPECT_TRUE(depot_.initialized());
  EXPECT_FALSE(depot_.init(1 << 20));
}

TEST_F(StackDepotTest, UninitializedDepotStoresNothing) {
  const auto pcs = fake_stack(1);
  EXPECT_EQ(depot_.store(pcs.data(), pcs.size()), 0u);
  std::uintptr_t out[4];
  EXPECT_EQ(depot_.load(1, out, 4), 0u);
}

TEST_F(StackDepotTest, StoreThenLoadRoundTrips) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto pcs = fake_stack(7);
  const std::uint32_t id = depot_.store(pcs.data(), pcs.size());
  ASSERT_NE(id, 0u);
  std::uintptr_t out[64] = {};
  ASSERT_EQ(depot_.load(id, out, 64), pcs.size());
  EXPECT_EQ(std::vector<std::uintptr_t>(out, out + pcs.size()), pcs);
}

TEST_F(StackDepotTest, LoadTruncatesToTheCallersBuffer) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto pcs = fake_stack(3);
  const std::uint32_t id = depot_.store(pcs.data(), pcs.size());
  std::uintptr_t out[4] = {};
  ASSERT_EQ(depot_.load(id, out, 4), 4u);
  EXPECT_EQ(out[3], pcs[3]);
}

TEST_F(StackDepotTest, EqualStacksShareOneEntry) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto a = fake_stack(1);
  const auto b = fake_stack(1);
  const auto c = fake_stack(2);
  const std::uint32_t id_a = depot_.store(a.data(), a.size());
  const std::size_t used = depot_.stats().bytes_used;
  EXPECT_EQ(depot_.store(b.data(), b.size()), id_a);
  EXPECT_EQ(depot_.stats().bytes_used, used);
  EXPECT_NE(depot_.store(c.data(), c.size()), id_a);
  EXPECT_EQ(depot_.stats().entries, 2u);
}

TEST_F(StackDepotTest, PrefixIsADifferentStack) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto pcs = fake_stack(5);
  const std::uint32_t full = depot_.store(pcs.data(), pcs.size());
  const std::uint32_t prefix = depot_.store(pcs.data(), pcs.size() - 1);
  EXPECT_NE(full, prefix);
  std::uintptr_t out[64];
  EXPECT_EQ(depot_.load(prefix, out, 64), pcs.size() - 1);
}

TEST_F(StackDepotTest, EmptyStackIsNone) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto pcs = fake_stack(1);
  EXPECT_EQ(depot_.store(pcs.data(), 0), 0u);
  EXPECT_EQ(depot_.store(nullptr, 3), 0u);
}

TEST_F(StackDepotTest, DeepStacksAreClampedToMaxDepth) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto pcs = fake_stack(9, kMaxDepth + 40);
  const std::uint32_t id = depot_.store(pcs.data(), pcs.size());
  std::uintptr_t out[kMaxDepth + 40];
  EXPECT_EQ(depot_.load(id, out, kMaxDepth + 40), kMaxDepth);
}

TEST_F(StackDepotTest, IdsThatNameNoStackLoadNothing) {
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto pcs = fake_stack(11);
  const std::uint32_t id = depot_.store(pcs.data(), pcs.size());
  std::uintptr_t out[64];
  EXPECT_EQ(depot_.load(0, out, 64), 0u);
  // Inside the entry (its frames are not a header with a matching hash),
  // just past it, and far beyond the pool.
  for (std::uint32_t bogus : {id + 1, id + 2, id + 3, id + 8, id + 100, 0xffffffffu}) {
    EXPECT_EQ(depot_.load(bogus, out, 64), 0u) << bogus;
  }
  EXPECT_EQ(depot_.load(id, nullptr, 64), 0u);
  EXPECT_EQ(depot_.load(id, out, 0), 0u);
}

TEST_F(StackDepotTest, FullDepotDropsNewStacksAndStopsGrowing) {
  constexpr std::size_t kCapacity = 64 * 1024;
  ASSERT_TRUE(depot_.init(kCapacity));
  std::vector<std::uint32_t> ids;
  std::uint64_t seed = 0;
  while (depot_.stats().drops == 0) {
    const auto pcs = fake_stack(seed++);
    const std::uint32_t id = depot_.store(pcs.data(), pcs.size());
    if (id != 0) ids.push_back(id);
    ASSERT_LT(seed, 100000u) << "the depot never filled up";
  }
  const StackDepotStats full = depot_.stats();
  EXPECT_LE(full.bytes_used, kCapacity);
  EXPECT_LE(full.capacity_bytes, kCapacity);
  EXPECT_EQ(full.entries, ids.size());

  for (int i = 0; i < 1000; ++i) {
    const auto pcs = fake_stack(seed++);
    EXPECT_EQ(depot_.store(pcs.data(), pcs.size()), 0u);
  }
  const StackDepotStats after = depot_.stats();
  EXPECT_EQ(after.bytes_used, full.bytes_used);
  EXPECT_EQ(after.entries, full.entries);
  EXPECT_EQ(after.drops, full.drops + 1000);

  // Stacks stored before the depot filled are still found and loadable.
  const auto first = fake_stack(0);
  EXPECT_EQ(depot_.store(first.data(), first.size()), ids.front());
  std::uintptr_t out[64];
  EXPECT_EQ(depot_.load(ids.back(), out, 64), 12u);
}

TEST_F(StackDepotTest, ConcurrentStoresDeduplicateAcrossThreads) {
  ASSERT_TRUE(depot_.init(8 << 20));
  constexpr std::size_t kThreads = 4;
  constexpr std::uint64_t kShared = 2000;   // every thread stores these
  constexpr std::uint64_t kPrivate = 2000;  // and these of its own
  std::vector<std::vector<std::uint32_t>> shared_ids(kThreads);
  std::atomic<std::size_t> ready{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      auto& mine = shared_ids[t];
      mine.resize(kShared);
      for (std::uint64_t i = 0; i < kShared; ++i) {
        // Different threads walk the shared set in different orders.
        const std::uint64_t s = (t % 2 == 0) ? i : kShared - 1 - i;
        const auto pcs = fake_stack(s);
        mine[s] = depot_.store(pcs.data(), pcs.size());
        const auto own = fake_stack(1000000 + t * kPrivate + i);
        EXPECT_NE(depot_.store(own.data(), own.size()), 0u);
      }
    });
  }
  for (auto& th : threads) th.join();

  for (std::uint64_t s = 0; s < kShared; ++s) {
    ASSERT_NE(shared_ids[0][s], 0u);
    for (std::size_t t = 1; t < kThreads; ++t) ASSERT_EQ(shared_ids[t][s], shared_ids[0][s]) << s;
    std::uintptr_t out[64];
    ASSERT_EQ(depot_.load(shared_ids[0][s], out, 64), 12u);
    ASSERT_EQ(std::vector<std::uintptr_t>(out, out + 12), fake_stack(s));
  }
  EXPECT_EQ(depot_.stats().entries, kShared + kThreads * kPrivate);
  EXPECT_EQ(depot_.stats().drops, 0u);
}

TEST_F(StackDepotTest, LoadsRunConcurrentlyWithStores) {
  ASSERT_TRUE(depot_.init(4 << 20));
  const auto anchor = fake_stack(42);
  const std::uint32_t anchor_id = depot_.store(anchor.data(), anchor.size());
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    std::uintptr_t out[64];
    while (!stop.load()) {
      ASSERT_EQ(depot_.load(anchor_id, out, 64), anchor.size());
      ASSERT_EQ(out[0], anchor[0]);
    }
  });
  for (std::uint64_t s = 100; s < 20000; ++s) {
    const auto pcs = fake_stack(s);
    depot_.store(pcs.data(), pcs.size());
  }
  stop.store(true);
  reader.join();
}

}  // namespace
}  // namespace guardarena::stack
