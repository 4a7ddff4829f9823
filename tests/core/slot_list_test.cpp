// core/slot_list.h: intrusive slot lists through SlotMeta::next.
#include "core/slot_list.h"

#include <gtest/gtest.h>

#include <vector>

namespace guardarena {
namespace {

class SlotListTest : public ::testing::Test {
 protected:
  std::vector<SlotMeta> meta_ = std::vector<SlotMeta>(16);
};

TEST_F(SlotListTest, FifoGivesSlotsBackOldestFirst) {
  SlotFifo f;
  EXPECT_TRUE(f.empty());
  for (std::uint32_t id : {5u, 2u, 9u}) f.push(meta_.data(), id);
  EXPECT_EQ(f.count, 3u);
  EXPECT_EQ(f.pop(meta_.data()), 5u);
  f.push(meta_.data(), 7);
  EXPECT_EQ(f.pop(meta_.data()), 2u);
  EXPECT_EQ(f.pop(meta_.data()), 9u);
  EXPECT_EQ(f.pop(meta_.data()), 7u);
  EXPECT_TRUE(f.empty());
}

TEST_F(SlotListTest, FifoRestartsCleanlyAfterEmptying) {
  SlotFifo f;
  f.push(meta_.data(), 1);
  EXPECT_EQ(f.pop(meta_.data()), 1u);
  f.push(meta_.data(), 3);
  f.push(meta_.data(), 4);
  EXPECT_EQ(f.pop(meta_.data()), 3u);
  EXPECT_EQ(f.pop(meta_.data()), 4u);
}

TEST_F(SlotListTest, FifoTerminatesItsLastLink) {
  SlotFifo f;
  meta_[6].next = 11;  // stale link from an earlier list
  f.push(meta_.data(), 6);
  EXPECT_EQ(meta_[6].next, kNoSlot);
}

TEST_F(SlotListTest, StackGivesSlotsBackNewestFirst) {
  SlotStack s;
  EXPECT_TRUE(s.empty());
  for (std::uint32_t id : {5u, 2u, 9u}) s.push(meta_.data(), id);
  EXPECT_EQ(s.pop(meta_.data()), 9u);
  EXPECT_EQ(s.pop(meta_.data()), 2u);
  EXPECT_EQ(s.pop(meta_.data()), 5u);
  EXPECT_TRUE(s.empty());
}

TEST_F(SlotListTest, ClearEmptiesWithoutTouchingMetadata) {
  SlotFifo f;
  SlotStack s;
  f.push(meta_.data(), 1);
  s.push(meta_.data(), 2);
  f.clear();
  s.clear();
  EXPECT_TRUE(f.empty());
  EXPECT_TRUE(s.empty());
}

}  // namespace
}  // namespace guardarena
