// core/free_checks.h: what each free-time check finds, seen through a
// reporter hook that prints the finding and exits.
#include "core/free_checks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "core/hooks.h"

namespace guardarena {
namespace {

void print_and_exit(const Finding& f) noexcept {
  std::fprintf(stderr, "finding %s distance=%lld bad=%llu has_block=%d\n", error_kind_name(f.kind),
               static_cast<long long>(f.distance), static_cast<unsigned long long>(f.bad_bytes),
               f.has_block ? 1 : 0);
  std::fflush(stderr);
  ::_exit(3);
}

class FreeChecksDeathTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kPage = 4096;
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    set_finding_reporter(print_and_exit);
    // A 100-byte malloc block at offset 3996 of a one-page slot.
    m_.state.store(SlotState::kLive);
    m_.alloc_kind = static_cast<std::uint8_t>(AllocKind::kMalloc);
    m_.align_log2 = 4;
    m_.size = 100;
    m_.offset = kPage - 100;
    m_.open_begin = 0;
    m_.open_end = kPage;
    start_ = reinterpret_cast<std::uintptr_t>(slot_.data());
    m_.block = start_ + m_.offset;
    write_canaries_at(slot_.data(), canary_span(0, m_.offset, 100, kPage, kPage, false), m_.offset,
                      100);
  }
  std::vector<unsigned char> slot_ = std::vector<unsigned char>(kPage, 0);
  SlotMeta m_{};
  std::uintptr_t start_ = 0;
};

// Whichever freed state the first free has reached (a second free can race
// the first one while it is still poisoning).
TEST_F(FreeChecksDeathTest, FreeOfAFreedBlockIsADoubleFree) {
  m_.free_tid.store(7);
  for (SlotState st : {SlotState::kFreeing, SlotState::kQuarantined, SlotState::kAvailable}) {
    m_.state.store(st);
    EXPECT_EXIT(report_failed_free(m_, m_.block, m_.block, start_, AllocKind::kMalloc),
                ::testing::ExitedWithCode(3), "finding double-free distance=0")
        << static_cast<int>(st);
  }
}

TEST_F(FreeChecksDeathTest, FreeInsideALiveBlockIsAnInvalidFreeWithItsBlock) {
  EXPECT_EXIT(report_failed_free(m_, m_.block + 8, m_.block, start_, AllocKind::kMalloc),
              ::testing::ExitedWithCode(3), "finding invalid-free distance=8 bad=0 has_block=1");
}

TEST_F(FreeChecksDeathTest, WrongFamilyIsAMismatch) {
  EXPECT_EXIT(check_free_matches(m_, m_.block, start_, 0, 0, AllocKind::kNew),
              ::testing::ExitedWithCode(3), "finding alloc-dealloc-mismatch");
}

TEST_F(FreeChecksDeathTest, WrongSizeIsASizeMismatch) {
  m_.alloc_kind = static_cast<std::uint8_t>(AllocKind::kNew);
  EXPECT_EXIT(check_free_matches(m_, m_.block, start_, 96, 0, AllocKind::kNew),
              ::testing::ExitedWithCode(3), "finding dealloc-size-mismatch");
}

TEST_F(FreeChecksDeathTest, MatchingFreesPass) {
  check_free_matches(m_, m_.block, start_, 0, 0, AllocKind::kMalloc);
  check_free_matches(m_, m_.block, start_, 100, 16, AllocKind::kPmr);  // pmr matches any family
  check_slot_canaries(m_, start_, kPage, false);
  SUCCEED();
}

TEST_F(FreeChecksDeathTest, DamagedCanaryBeforeTheBlockIsAnUnderflow) {
  slot_[m_.offset - 2] = 0;
  EXPECT_EXIT(check_slot_canaries(m_, start_, kPage, false), ::testing::ExitedWithCode(3),
              "finding heap-buffer-underflow distance=-2 bad=2");
}

TEST_F(FreeChecksDeathTest, ChangedPoisonIsAWriteAfterFree) {
  fill_bytes(slot_.data() + m_.offset, 100, kPoisonByte);
  check_slot_poison(m_, start_);  // intact
  slot_[m_.offset + 40] = 1;
  EXPECT_EXIT(check_slot_poison(m_, start_), ::testing::ExitedWithCode(3),
              "finding heap-use-after-free distance=40");
}

}  // namespace
}  // namespace guardarena
