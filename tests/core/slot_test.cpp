#include "core/slot.h"

#include <gtest/gtest.h>

namespace guardarena {
namespace {

constexpr std::size_t kPage = 4096;  // slot math is pure: any page size works here

TEST(SlotClassTest, ClassesCoverEveryPageCount) {
  for (std::size_t pages = 1; pages <= 4096; ++pages) {
    std::size_t c = class_for_pages(pages);
    EXPECT_GE(class_pages(c), pages) << pages;
    if (c > 0) {
      EXPECT_LT(class_pages(c - 1), pages) << pages;
    }
  }
}

TEST(SlotClassTest, FirstClassesAreExact) {
  EXPECT_EQ(class_pages(0), 1u);
  EXPECT_EQ(class_pages(3), 4u);
  EXPECT_EQ(class_pages(4), 8u);
  EXPECT_EQ(class_for_pages(5), 4u);
}

TEST(SlotGeometryTest, SlotsAreSeparatedByGuardPages) {
  SlotGeometry g{kPage, 3};
  EXPECT_EQ(g.slot_offset(0), kPage);
  EXPECT_EQ(g.slot_offset(1) - (g.slot_offset(0) + g.usable_bytes()), kPage);
  EXPECT_EQ(g.slots_in(kPage + 4 * kPage * 10), 10u);
}

TEST(PlacementTest, RightAlignedBlockEndsAtGuardWhenSizeIsAligned) {
  Placement p = place_block(0x100000, kPage, 64, 16, false, kPage);
  EXPECT_EQ(p.offset + 64, kPage);
  EXPECT_EQ(p.open_begin, 0u);
  EXPECT_EQ(p.open_end, kPage);
}

TEST(PlacementTest, RightAlignedOddSizeLeavesSlackBelowAlignment) {
  Placement p = place_block(0x100000, kPage, 13, 16, false, kPage);
  EXPECT_EQ(p.offset % 16, 0u);
  EXPECT_EQ(kPage - (p.offset + 13), 3u);
}

TEST(PlacementTest, LeftAlignedBlockStartsAtSlot) {
  Placement p = place_block(0x100000, 2 * kPage, 100, 16, true, kPage);
  EXPECT_EQ(p.offset, 0u);
  EXPECT_EQ(p.open_end, kPage);
}

TEST(PlacementTest, OnlyNeededPagesOpenForSmallBlockInBigSlot) {
  Placement p = place_block(0x100000, 8 * kPage, 5000, 16, false, kPage);
  EXPECT_EQ(p.open_begin, 6 * kPage);
  EXPECT_EQ(p.open_end, 8 * kPage);
}

TEST(PlacementTest, EveryAlignmentFitsInTheNeededSlot) {
  for (std::size_t align = 1; align <= 1u << 20; align <<= 1) {
    for (std::size_t size :
         {std::size_t{1}, std::size_t{13}, std::size_t{4096}, std::size_t{70000}}) {
      std::size_t need = slot_bytes_needed(size, align, kPage);
      std::uintptr_t slot = 0x40000000 + kPage;  // page- but not over-aligned
      for (bool below : {false, true}) {
        Placement p = place_block(slot, need, size, align, below, kPage);
        EXPECT_EQ((slot + p.offset) % align, 0u) << align << " " << size;
        EXPECT_LE(p.offset + size, need) << align << " " << size;
      }
    }
  }
}

TEST(PlacementTest, ZeroSizeIsTreatedAsOne) {
  EXPECT_EQ(slot_bytes_needed(0, 16, kPage), kPage);
  Placement p = place_block(0x100000, kPage, 0, 1, false, kPage);
  EXPECT_EQ(p.offset, kPage - 1);
}

}  // namespace
}  // namespace guardarena
