// core/canary.h: byte scans, canary layout, and what the checks find.
#include "core/canary.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace guardarena {
namespace {

constexpr std::size_t kPage = 4096;  // pure arithmetic on a buffer: any page size works

TEST(ByteScanTest, FindsTheFirstAndLastChangedByteAtEveryLength) {
  for (std::size_t n : {1u, 7u, 8u, 15u, 16u, 33u, 64u, 65u, 4096u, 5000u, 9000u}) {
    std::vector<unsigned char> b(n, kCanaryByte);
    EXPECT_TRUE(all_bytes_are(b.data(), n, kCanaryByte)) << n;
    EXPECT_EQ(first_mismatch(b.data(), n, kCanaryByte), n) << n;
    EXPECT_EQ(last_mismatch_end(b.data(), n, kCanaryByte), 0u) << n;
    for (std::size_t at : {std::size_t{0}, n / 3, n - 1}) {
      b[at] = 0;
      EXPECT_FALSE(all_bytes_are(b.data(), n, kCanaryByte)) << n << " at " << at;
      EXPECT_EQ(first_mismatch(b.data(), n, kCanaryByte), at) << n << " at " << at;
      EXPECT_EQ(last_mismatch_end(b.data(), n, kCanaryByte), at + 1) << n << " at " << at;
      b[at] = kCanaryByte;
    }
  }
}

// Every length up to past 64 (each takes its own mix of overlapping loads)
// with a changed byte at every position.
TEST(ByteScanTest, ShortRunsSeeAChangedByteAnywhere) {
  for (std::size_t n = 1; n <= 80; ++n) {
    std::vector<unsigned char> b(n, kPoisonByte);
    EXPECT_TRUE(all_bytes_are(b.data(), n, kPoisonByte)) << n;
    for (std::size_t at = 0; at < n; ++at) {
      b[at] = kPoisonByte ^ 1;
      EXPECT_FALSE(all_bytes_are(b.data(), n, kPoisonByte)) << n << " at " << at;
      b[at] = kPoisonByte;
    }
  }
}

TEST(ByteScanTest, FillWritesExactlyTheRange) {
  for (std::size_t n = 1; n <= 80; ++n) {
    std::vector<unsigned char> b(n + 2, 0);
    fill_bytes(b.data() + 1, n, kPoisonByte);
    EXPECT_EQ(b[0], 0) << n;
    EXPECT_EQ(b[n + 1], 0) << n;
    for (std::size_t i = 1; i <= n; ++i) ASSERT_EQ(b[i], kPoisonByte) << n << " at " << i;
  }
}

// The n bytes before an end, for every n a 16-byte load ending there can
// cover: a changed byte among them is seen wherever it is, one just before
// them never is.
TEST(ByteScanTest, EndsWithBytesSeesExactlyTheLastNBytes) {
  for (std::size_t n = 0; n <= 16; ++n) {
    std::vector<unsigned char> b(16, 0);
    for (std::size_t i = 16 - n; i < 16; ++i) b[i] = kCanaryByte;
    const unsigned char* end = b.data() + 16;
    EXPECT_TRUE(ends_with_bytes(end, n, kCanaryByte)) << n;
    for (std::size_t at = 16 - n; at < 16; ++at) {
      b[at] = kCanaryByte ^ 1;
      EXPECT_FALSE(ends_with_bytes(end, n, kCanaryByte)) << n << " at " << at;
      b[at] = kCanaryByte;
    }
  }
}

TEST(CanarySpanTest, FullModeGuardsTheWholeSlackOfTheOpenPages) {
  // A 100-byte block at offset 3996 of a one-page slot.
  CanarySpan c = canary_span(0, 3996 - 96, 100, kPage, kPage, false);
  EXPECT_EQ(c.begin, 0u);
  EXPECT_EQ(c.end, kPage);
}

TEST(CanarySpanTest, FastModeChecksOnlySixtyFourBytesBefore) {
  CanarySpan c = canary_span(0, 3000, 100, kPage, kPage, true);
  EXPECT_EQ(c.begin, 3000 - kFastCanaryBefore);
  EXPECT_EQ(c.end, kPage);
}

TEST(CanarySpanTest, CanaryAfterStopsAtTheEndOfTheBlocksPage) {
  // Open two pages, block ends 10 bytes into the first: the canary ends with that page.
  CanarySpan c = canary_span(0, 0, 10, 2 * kPage, kPage, false);
  EXPECT_EQ(c.end, kPage);
}

class CanaryDamageTest : public ::testing::TestWithParam<bool> {
 protected:
  static constexpr std::size_t kOffset = 3000, kSize = 13;
  CanaryDamageTest() : slot_(kPage, 0) {
    span_ = canary_span(0, kOffset, kSize, kPage, kPage, GetParam());
    write_canaries_at(slot_.data(), span_, kOffset, kSize);
  }
  CanaryDamage check() { return find_canary_damage(slot_.data(), span_, kOffset, kSize); }
  std::vector<unsigned char> slot_;
  CanarySpan span_;
};

TEST_P(CanaryDamageTest, FreshCanariesAreIntact) {
  EXPECT_EQ(check().where, CanaryDamage::Where::kNone);
}

TEST_P(CanaryDamageTest, BlockBytesAreNotCanary) {
  for (std::size_t i = 0; i < kSize; ++i) slot_[kOffset + i] = 0x5a;
  EXPECT_EQ(check().where, CanaryDamage::Where::kNone);
}

TEST_P(CanaryDamageTest, WriteAfterTheBlockIsFoundWithItsReach) {
  slot_[kOffset + kSize + 4] = 0;  // 5 bytes past the end
  CanaryDamage d = check();
  EXPECT_EQ(d.where, CanaryDamage::Where::kAfter);
  EXPECT_EQ(d.bad_bytes, 5u);
}

TEST_P(CanaryDamageTest, LastByteOfThePageIsChecked) {
  slot_[kPage - 1] = 0;
  EXPECT_EQ(check().where, CanaryDamage::Where::kAfter);
}

TEST_P(CanaryDamageTest, WriteBeforeTheBlockIsFoundWithItsReach) {
  slot_[kOffset - 3] = 0;  // 3 bytes before the start
  CanaryDamage d = check();
  EXPECT_EQ(d.where, CanaryDamage::Where::kBefore);
  EXPECT_EQ(d.bad_bytes, 3u);
}

TEST_P(CanaryDamageTest, FirstCheckedByteBeforeTheBlockIsChecked) {
  slot_[span_.begin] = 0;
  CanaryDamage d = check();
  EXPECT_EQ(d.where, CanaryDamage::Where::kBefore);
  EXPECT_EQ(d.bad_bytes, kOffset - span_.begin);
}

std::string mode_name(const ::testing::TestParamInfo<bool>& p) {
  return p.param ? "fast" : "full";
}
INSTANTIATE_TEST_SUITE_P(Modes, CanaryDamageTest, ::testing::Values(false, true), mode_name);

TEST(PoisonTest, FindsTheFirstChangedByte) {
  std::vector<unsigned char> block(200, kPoisonByte);
  EXPECT_EQ(find_poison_damage(block.data(), block.size()), block.size());
  block[150] = 1;
  block[199] = 1;
  EXPECT_EQ(find_poison_damage(block.data(), block.size()), 150u);
  std::vector<unsigned char> small(64, kPoisonByte);
  small[63] = 0;
  EXPECT_EQ(find_poison_damage(small.data(), small.size()), 63u);
}

}  // namespace
}  // namespace guardarena
