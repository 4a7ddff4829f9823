// core/quarantine.h: the global bound, its per-thread shares and eviction.
#include "core/quarantine.h"

#include <gtest/gtest.h>

#include <vector>

namespace guardarena {
namespace {

constexpr std::uint64_t kSlot = 4096;

TEST(QuarantineShareTest, OneThreadGetsTheWholeBound) {
  QuarantineBound b = share_of({100, 1000 * kSlot}, 1, kSlot);
  EXPECT_EQ(b.slots, 100u);
  EXPECT_EQ(b.bytes, 1000 * kSlot);
}

TEST(QuarantineShareTest, ThreadsShareEvenly) {
  QuarantineBound b = share_of({100, 1000 * kSlot}, 4, kSlot);
  EXPECT_EQ(b.slots, 25u);
  EXPECT_EQ(b.bytes, 250 * kSlot);
}

TEST(QuarantineShareTest, SlotBoundCountsTheByteBoundInSlots) {
  // 16 slots' worth of bytes is tighter than 1000 slots.
  QuarantineBound b = share_of({1000, 16 * kSlot}, 1, kSlot);
  EXPECT_EQ(b.slots, 16u);
}

class EvictionTest : public ::testing::Test {
 protected:
  // Quarantines `n` entries of `bytes` each in the FIFO and the counters.
  void quarantine(std::uint32_t n, std::uint64_t bytes) {
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint32_t id = next_id_++;
      bytes_[id] = bytes;
      fifo_.push(meta_.data(), id);
      counters_.add(1, static_cast<std::int64_t>(bytes));
    }
  }
  std::uint64_t evict(QuarantineBound bound) {
    return counters_.evict_over_bound(
        fifo_, bound, [this](std::uint32_t id) { return bytes_[id]; },
        [this] { evicted_.push_back(fifo_.pop(meta_.data())); });
  }
  std::vector<SlotMeta> meta_ = std::vector<SlotMeta>(64);
  std::vector<std::uint64_t> bytes_ = std::vector<std::uint64_t>(64);
  std::vector<std::uint32_t> evicted_;
  std::uint32_t next_id_ = 0;
  SlotFifo fifo_;
  QuarantineCounters counters_;
};

TEST_F(EvictionTest, NothingLeavesWithinTheBound) {
  quarantine(4, kSlot);
  EXPECT_EQ(evict({4, 4 * kSlot}), 0u);
  EXPECT_EQ(counters_.blocks(), 4u);
}

TEST_F(EvictionTest, OldestLeaveUntilTheSlotBoundHolds) {
  quarantine(6, kSlot);
  EXPECT_EQ(evict({4, 100 * kSlot}), 2u);
  EXPECT_EQ(evicted_, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(counters_.blocks(), 4u);
  EXPECT_EQ(counters_.bytes(), 4 * kSlot);
}

TEST_F(EvictionTest, OldestLeaveUntilTheByteBoundHolds) {
  quarantine(2, 8 * kSlot);  // two big ones first
  quarantine(3, kSlot);
  EXPECT_EQ(evict({100, 9 * kSlot}), 2u);
  EXPECT_EQ(counters_.bytes(), 3 * kSlot);
}

TEST_F(EvictionTest, GlobalCountsIncludeOtherFifos) {
  quarantine(2, kSlot);
  counters_.add(10, 10 * kSlot);  // entries of other classes' FIFOs
  // Over the bound by 8, but this FIFO holds only two: it gives what it has.
  EXPECT_EQ(evict({4, 100 * kSlot}), 2u);
  EXPECT_TRUE(fifo_.empty());
  EXPECT_EQ(counters_.blocks(), 10u);
}

}  // namespace
}  // namespace guardarena
