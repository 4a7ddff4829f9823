// core/chunk_table.h: chunk runs and the address <-> slot arithmetic, on a
// table with no reservation behind it (nothing here touches the chunks).
#include "core/chunk_table.h"

#include <gtest/gtest.h>

#include "os/os_linux.h"

namespace guardarena {
namespace {

class ChunkTableTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kChunkPages = 16384;
  static constexpr std::uint32_t kChunks = 8;
  void SetUp() override {
    page_ = os::page_size();
    chunk_bytes_ = kChunkPages * page_;
    max_class_ = class_for_pages(kChunkPages / 4);
    base_ = std::uintptr_t{1} << 44;  // chunk-aligned; never dereferenced
    t_.init_geometry(page_, chunk_bytes_, max_class_);
    ASSERT_TRUE(t_.map(base_, kChunks));
  }
  void TearDown() override { t_.unmap(); }

  std::size_t page_ = 0, chunk_bytes_ = 0, max_class_ = 0;
  std::uintptr_t base_ = 0;
  ChunkTable t_;
};

TEST_F(ChunkTableTest, RunsComeFromTheFrontUntilTheReservationIsFull) {
  EXPECT_EQ(t_.take_run(1, false), 0u);
  EXPECT_EQ(t_.take_run(3, true), 1u);
  EXPECT_EQ(t_.take_run(4, false), 4u);
  EXPECT_EQ(t_.take_run(1, false), kNoSlot);
  EXPECT_EQ(t_.used(), kChunks);
}

TEST_F(ChunkTableTest, LargeRunRecordsItsHeadAndLength) {
  std::uint32_t start = t_.take_run(3, true);
  t_.publish_large(start, 3);
  for (std::uint32_t c = start; c < start + 3; ++c) {
    EXPECT_EQ(t_[c].head, start);
    EXPECT_EQ(t_[c].kind.load(), ChunkKind::kLarge);
  }
  EXPECT_EQ(t_[start].run_len, 3u);
}

TEST_F(ChunkTableTest, RunsGivenBackAreMergedAndReused) {
  for (std::uint32_t i = 0; i < kChunks; ++i) ASSERT_EQ(t_.take_run(1, false), i);
  t_.free_run(2, 1);
  t_.free_run(3, 2);  // adjacent: merged into [2, 5)
  EXPECT_EQ(t_[3].kind.load(), ChunkKind::kFree);
  EXPECT_EQ(t_.take_run(3, true), 2u);
  EXPECT_EQ(t_.take_run(1, false), kNoSlot);
}

TEST_F(ChunkTableTest, RetiredChunksAreReusedOnlyWhenTheRestIsUsedUp) {
  ASSERT_EQ(t_.take_run(2, false), 0u);
  t_.lock();
  t_.retire_used_locked();
  t_.unlock();
  EXPECT_EQ(t_[0].kind.load(), ChunkKind::kReleased);
  EXPECT_EQ(t_.take_run(6, false), 2u) << "fresh chunks first";
  EXPECT_EQ(t_.take_run(2, false), 0u) << "then the retired ones";
  EXPECT_EQ(t_[0].kind.load(), ChunkKind::kFree);
}

TEST_F(ChunkTableTest, EveryUsableByteOfEveryClassMapsBackToItsSlot) {
  std::uint32_t chunk = 0;
  for (std::size_t cls = 0; cls <= max_class_ && chunk < kChunks; ++cls, ++chunk) {
    ASSERT_EQ(t_.take_run(1, false), chunk);
    t_.publish_class(chunk, cls);
    const std::uint32_t slots = t_.slots_per_chunk(cls);
    ASSERT_GT(slots, 0u);
    for (std::uint32_t i : {0u, 1u, slots / 2, slots - 1}) {
      const std::uint32_t id = t_.slot_id(chunk, i);
      const std::uintptr_t start = t_.slot_address(id, cls);
      const SlotGeometry g{page_, class_pages(cls)};
      EXPECT_EQ(start, t_.chunk_base(chunk) + g.slot_offset(i));
      for (std::uintptr_t a : {start, start + class_pages(cls) * page_ - 1}) {
        std::size_t got_cls = 99;
        EXPECT_EQ(t_.slot_of(a, got_cls), id) << "class " << cls << " slot " << i;
        EXPECT_EQ(got_cls, cls);
      }
      std::size_t ignored = 0;
      EXPECT_EQ(t_.slot_of(start - 1, ignored), kNoSlot) << "the guard page before";
      EXPECT_EQ(t_.slot_of(start + class_pages(cls) * page_, ignored), kNoSlot)
          << "the guard page after";
    }
  }
}

TEST_F(ChunkTableTest, AddressesInALargeRunMapToItsOneSlot) {
  std::uint32_t start = t_.take_run(2, true);
  t_.publish_large(start, 2);
  const std::uint32_t id = t_.slot_id(start, 0);
  EXPECT_EQ(t_.slot_address(id, t_.large_class()), t_.chunk_base(start) + page_);
  std::size_t cls = 0;
  EXPECT_EQ(t_.slot_of(t_.chunk_base(start + 1) + 12345, cls), id);
  EXPECT_EQ(cls, t_.large_class());
}

TEST_F(ChunkTableTest, FreeChunksHoldNoSlot) {
  std::size_t cls = 0;
  EXPECT_EQ(t_.slot_of(t_.chunk_base(5) + 3 * page_, cls), kNoSlot);
}

}  // namespace
}  // namespace guardarena
