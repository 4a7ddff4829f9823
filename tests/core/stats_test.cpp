// core/stats.h: live-block counters, peaks, and late (possibly negative) deltas.
#include "core/stats.h"

#include <gtest/gtest.h>

namespace guardarena {
namespace {

TEST(LiveCountersTest, CountsAllocationsAndFrees) {
  LiveCounters c;
  c.add(1, 100, 1);
  c.add(1, 50, 1);
  c.remove(100);
  EXPECT_EQ(c.blocks(), 1u);
  EXPECT_EQ(c.bytes(), 50u);
  EXPECT_EQ(c.allocations(), 2u);
}

TEST(LiveCountersTest, PeaksKeepTheHighestSum) {
  LiveCounters c;
  c.add(3, 300, 3);
  c.remove(100);
  c.remove(100);
  c.add(1, 10, 1);
  EXPECT_EQ(c.peak_blocks(), 3u);
  EXPECT_EQ(c.peak_bytes(), 300u);
}

TEST(LiveCountersTest, ThreadDeltasFoldInAtOnce) {
  LiveCounters c;
  c.add(5, 500, 7);  // a thread's allocations (7) net of its own frees
  EXPECT_EQ(c.blocks(), 5u);
  EXPECT_EQ(c.allocations(), 7u);
  EXPECT_EQ(c.peak_blocks(), 5u);
}

TEST(LiveCountersTest, FreeBeforeItsAllocationIsFoldedReadsAsZero) {
  LiveCounters c;
  c.remove(64);  // another thread freed a block whose allocation is not folded yet
  EXPECT_EQ(c.blocks(), 0u);
  EXPECT_EQ(c.bytes(), 0u);
  c.add(-1, -64, 0);  // a negative delta of a thread's own
  EXPECT_EQ(c.peak_blocks(), 0u) << "a wrapped sum must not become the peak";
  EXPECT_EQ(c.peak_bytes(), 0u);
  c.add(3, 192, 3);
  EXPECT_EQ(c.blocks(), 1u);
  EXPECT_EQ(c.bytes(), 64u);
}

TEST(LiveCountersTest, ResetStartsOver) {
  LiveCounters c;
  c.add(2, 20, 2);
  c.reset();
  EXPECT_EQ(c.blocks(), 0u);
  EXPECT_EQ(c.peak_bytes(), 0u);
  EXPECT_EQ(c.allocations(), 0u);
}

}  // namespace
}  // namespace guardarena
