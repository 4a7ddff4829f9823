// The slot geometry, block placement and canary spans for every page size Linux runs
// with: 4 KiB (x86-64, most arm64), 16 KiB and 64 KiB (arm64 kernels built
// so). The math is pure, so each size is checked here whatever the machine's
// page size is.
#include <gtest/gtest.h>

#include <cstdint>

#include "core/canary.h"
#include "core/slot.h"

namespace guardarena {
namespace {

class PageSizeTest : public ::testing::TestWithParam<std::size_t> {};

INSTANTIATE_TEST_SUITE_P(LinuxPageSizes, PageSizeTest,
                         ::testing::Values(std::size_t{4096}, std::size_t{16384},
                                           std::size_t{65536}),
                         [](const auto& param_info) {
                           return std::to_string(param_info.param >> 10) + "KiB";
                         });

// Every (size, alignment) fits its slot, is aligned, sits inside the open
// pages, and the open pages are whole pages strictly between two guards.
TEST_P(PageSizeTest, EveryBlockFitsItsSlotBetweenTwoGuards) {
  const std::size_t page = GetParam();
  const std::uintptr_t chunk = 0x7f0000000000;  // aligned to every page size here
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{13}, std::size_t{64},
                           page - 1, page, page + 1, 3 * page + 7, 40 * page}) {
    for (std::size_t align : {std::size_t{1}, std::size_t{16}, std::size_t{4096}, page, 4 * page}) {
      const std::size_t need = slot_bytes_needed(size, align, page);
      const std::size_t pages = need / page;
      ASSERT_EQ(need % page, 0u);
      SlotGeometry g{page, class_pages(class_for_pages(pages))};
      ASSERT_GE(g.usable_bytes(), need);
      const std::uintptr_t slot = chunk + g.slot_offset(1);
      for (bool below : {false, true}) {
        const Placement p = place_block(slot, g.usable_bytes(), size, align, below, page);
        const std::uintptr_t block = slot + p.offset;
        const std::size_t s = size == 0 ? 1 : size;
        SCOPED_TRACE(testing::Message() << "page " << page << " size " << size << " align " << align
                                        << (below ? " below" : " above"));
        EXPECT_EQ(block % align, 0u);
        EXPECT_LE(p.offset + s, g.usable_bytes());
        EXPECT_EQ(p.open_begin % page, 0u);
        EXPECT_EQ(p.open_end % page, 0u);
        EXPECT_LE(p.open_begin, p.offset);
        EXPECT_GE(p.open_end, p.offset + s);
        EXPECT_LE(p.open_end, g.usable_bytes());
        // The guard the placement is against is one byte away, rounded
        // only by the alignment.
        if (below) {
          EXPECT_LT(p.offset, align) << "an underflow must reach the leading guard";
        } else {
          EXPECT_LT(g.usable_bytes() - (p.offset + s), align)
              << "an overflow must reach the trailing guard";
        }
        // The canaries cover the slack between the block and the open
        // pages' ends, and nothing outside the open pages.
        const CanarySpan c = canary_span(p.open_begin, p.offset, s, p.open_end, page, false);
        EXPECT_EQ(c.begin, p.open_begin);
        EXPECT_GE(c.end, p.offset + s);
        EXPECT_LE(c.end, p.open_end);
        EXPECT_LT(c.end - (p.offset + s), page) << "the canary after ends in the block's page";
        if (!below && align <= page) {
          EXPECT_EQ(c.end, g.usable_bytes()) << "the slack up to the trailing guard is canary";
        }
      }
    }
  }
}

TEST_P(PageSizeTest, SlotsOfAChunkAreSeparatedByOneGuardPage) {
  const std::size_t page = GetParam();
  const std::size_t chunk_bytes = std::size_t{64} << 20;
  for (std::size_t c = 0; c < 8; ++c) {
    SlotGeometry g{page, class_pages(c)};
    const std::size_t n = g.slots_in(chunk_bytes);
    ASSERT_GT(n, 0u);
    EXPECT_EQ(g.slot_offset(0), page);
    EXPECT_LE(g.slot_offset(n - 1) + g.usable_bytes() + page, chunk_bytes);
    EXPECT_EQ(g.slot_offset(1) - (g.slot_offset(0) + g.usable_bytes()), page);
  }
}

}  // namespace
}  // namespace guardarena
