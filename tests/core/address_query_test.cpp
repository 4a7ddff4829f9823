// core/address_query.h: classifying an address from the chunk table and the
// slot metadata alone (no reservation behind the addresses).
#include "core/address_query.h"

#include <gtest/gtest.h>

#include <vector>

#include "os/os_linux.h"

namespace guardarena {
namespace {

class AddressQueryTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kChunkPages = 16384;
  void SetUp() override {
    page_ = os::page_size();
    t_.init_geometry(page_, kChunkPages * page_, class_for_pages(kChunkPages / 4));
    ASSERT_TRUE(t_.map(std::uintptr_t{1} << 44, 4));
    meta_ = std::vector<SlotMeta>(std::size_t{4} * t_.max_slots());
    ASSERT_EQ(t_.take_run(1, false), 0u);
    t_.publish_class(0, 0);  // one-page slots
  }
  void TearDown() override { t_.unmap(); }
  // A block of `size` bytes right-aligned in one-page slot `i` of chunk 0.
  std::uintptr_t place(std::uint32_t i, std::size_t size, SlotState state) {
    const std::uint32_t id = t_.slot_id(0, i);
    SlotMeta& m = meta_[id];
    m.offset = page_ - size;
    m.size = size;
    m.align_log2 = 4;
    m.state.store(state);
    return t_.slot_address(id, 0) + m.offset;
  }
  AddressInfo query(std::uintptr_t addr) {
    AddressInfo out;
    describe_address(t_, meta_.data(), addr, out);
    return out;
  }
  std::size_t page_ = 0;
  ChunkTable t_;
  std::vector<SlotMeta> meta_;
};

TEST_F(AddressQueryTest, ByteAfterALiveBlockIsAnOverflow) {
  std::uintptr_t b = place(3, 64, SlotState::kLive);
  AddressInfo info = query(b + 64);  // the guard page after slot 3
  EXPECT_EQ(info.kind, ErrorKind::kHeapBufferOverflow);
  ASSERT_TRUE(info.has_block);
  EXPECT_EQ(info.block, b);
  EXPECT_EQ(info.distance, 64);
  EXPECT_EQ(info.size, 64u);
}

TEST_F(AddressQueryTest, ByteBeforeALiveBlockIsAnUnderflow) {
  std::uintptr_t b = place(5, 64, SlotState::kLive);
  AddressInfo info = query(b - 1);
  EXPECT_EQ(info.kind, ErrorKind::kHeapBufferUnderflow);
  EXPECT_EQ(info.distance, -1);
}

TEST_F(AddressQueryTest, ByteInsideAFreedBlockIsAUseAfterFree) {
  std::uintptr_t b = place(7, 32, SlotState::kQuarantined);
  AddressInfo info = query(b + 5);
  EXPECT_EQ(info.kind, ErrorKind::kHeapUseAfterFree);
  EXPECT_EQ(info.distance, 5);
  EXPECT_EQ(info.state, SlotState::kQuarantined);
}

TEST_F(AddressQueryTest, FreeChunkIsAWildAccess) {
  AddressInfo info = query(t_.chunk_base(2) + 3 * page_);
  EXPECT_EQ(info.kind, ErrorKind::kWildAccess);
  EXPECT_FALSE(info.has_block);
}

TEST_F(AddressQueryTest, RetiredChunkIsAUseAfterRelease) {
  place(1, 16, SlotState::kLive);
  t_.lock();
  t_.retire_used_locked();
  t_.unlock();
  EXPECT_EQ(query(t_.chunk_base(0) + 2 * page_).kind, ErrorKind::kUseAfterRelease);
}

}  // namespace
}  // namespace guardarena
