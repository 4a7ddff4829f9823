// Bugs in code that uses guarded_resource die at the buggy statement with a
// report naming the kind, the access, the offset and the block. Run on both
// backends. Helpers are noinline/optimize(0) so the bug stays in the code.
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <string>

#include "guardarena/guardarena.hpp"
#include "test_support.h"

namespace guardarena {
namespace {

using testing::with_backend;

#define GA_NOINLINE [[gnu::noinline, gnu::optimize("O0")]]

GA_NOINLINE void write_byte(void* p, std::ptrdiff_t at) {
  static_cast<volatile char*>(p)[at] = 1;
}
GA_NOINLINE char read_byte(const void* p, std::ptrdiff_t at) {
  return static_cast<const volatile char*>(p)[at];
}

template <class B>
class PmrDeathTest : public testing::GuardSkippingTest<B> {
 protected:
  void SetUp() override {
    testing::GuardSkippingTest<B>::SetUp();
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
  static std::string opts(const std::string& extra = "") { return with_backend<B>(extra); }
};
TYPED_TEST_SUITE(PmrDeathTest, testing::Backends, testing::BackendNames);

TYPED_TEST(PmrDeathTest, WriteOneBytePastAlignedBlockFaultsAtTheWrite) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(64, 16);
  write_byte(p, 63);  // last byte is fine
  EXPECT_EXIT(write_byte(p, 64), ::testing::KilledBySignal(SIGSEGV),
              "ERROR: guardarena: heap-buffer-overflow on address.*\n"
              "WRITE at 0x[0-9a-f]+\n"
              ".* is located 0 bytes after the 64-byte block.*\n"
              // The access stack starts at the faulting statement, symbolized.
              "accessed by thread T[0-9]+ here:\n"
              "    #0 0x[0-9a-f]+ in guardarena::.*write_byte.* .*pmr_death_test.cpp:[0-9]+ .*"
              "allocated by thread T[0-9]+ here:\n.*pmr_death_test.cpp:[0-9]+");
}

TYPED_TEST(PmrDeathTest, ReadOneBytePastAlignedBlockFaultsAsRead) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(4096, 16);
  EXPECT_EXIT(read_byte(p, 4096), ::testing::KilledBySignal(SIGSEGV),
              "heap-buffer-overflow.*\nREAD at .*\n.* 0 bytes after the 4096-byte block");
}

TYPED_TEST(PmrDeathTest, UnderflowWithProtectBelowFaults) {
  guarded_resource r{this->opts("protect_below=1")};
  void* p = r.allocate(100, 8);
  EXPECT_EXIT(write_byte(p, -1), ::testing::KilledBySignal(SIGSEGV),
              "heap-buffer-underflow.*\nWRITE at .*\n.* 1 bytes before the 100-byte block");
}

TYPED_TEST(PmrDeathTest, UseAfterFreeFaultsOnFirstTouch) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(200, 8);
  r.deallocate(p, 200, 8);
  EXPECT_EXIT(
      read_byte(p, 10), ::testing::KilledBySignal(SIGSEGV),
      "heap-use-after-free.*\nREAD at .*\n.* 10 bytes inside the freed 200-byte block.*"
      "accessed by .*read_byte.*pmr_death_test.cpp.*"
      // Stacks start at the public entry point the test called.
      "freed by thread T[0-9]+ here:\n"
      "    #0 0x[0-9a-f]+ in std::pmr::memory_resource::deallocate.*pmr_death_test.cpp:[0-9]+.*"
      "allocated by thread T[0-9]+ here:\n"
      "    #0 0x[0-9a-f]+ in std::pmr::memory_resource::allocate.*pmr_death_test.cpp:[0-9]+");
}

TYPED_TEST(PmrDeathTest, LargeBlockOverflowFaults) {
  guarded_resource r{this->opts()};
  std::size_t size = 32u << 20;  // beyond the largest slot class
  void* p = r.allocate(size, 64);
  write_byte(p, static_cast<std::ptrdiff_t>(size) - 1);
  EXPECT_EXIT(write_byte(p, static_cast<std::ptrdiff_t>(size)), ::testing::KilledBySignal(SIGSEGV),
              "heap-buffer-overflow.*\nWRITE.*\n.* 0 bytes after the 33554432-byte block");
}

TYPED_TEST(PmrDeathTest, SlackOverflowOfThirteenByteBlockIsReportedAtDeallocation) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(13, 16);
  write_byte(p, 13);  // inside the alignment slack: no fault yet
  EXPECT_DEATH(r.deallocate(p, 13, 16),
               "ERROR: guardarena: heap-buffer-overflow.*\n1 bytes written past the end of the "
               "13-byte block");
}

TYPED_TEST(PmrDeathTest, SlackUnderflowIsReportedAtDeallocation) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(100, 16);
  write_byte(p, -1);  // before the block, inside its page
  EXPECT_DEATH(r.deallocate(p, 100, 16),
               "heap-buffer-underflow.*\n1 bytes written before the start of the 100-byte block");
}

TYPED_TEST(PmrDeathTest, DoubleFreeIsReported) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(48, 16);
  r.deallocate(p, 48, 16);
  EXPECT_DEATH(r.deallocate(p, 48, 16),
               "ERROR: guardarena: double-free.*\nattempting double-free of 0x[0-9a-f]+ \\(48-byte "
               "block\\).*"
               "deallocated by thread T[0-9]+ here:.*"
               "first freed by thread T[0-9]+ here:\n.*pmr_death_test.cpp.*"
               "allocated by thread T[0-9]+ here:\n.*pmr_death_test.cpp");
}

// Optimised (memory_resource::deallocate inlines here) but not inlined into
// the test, so that it is a frame of its own: the program's frame the report
// must start at.
[[gnu::noinline]] void deallocate_twice(std::pmr::memory_resource& r, void* p) {
  r.deallocate(p, 64, 16);
  r.deallocate(p, 64, 16);
  asm volatile("" ::: "memory");  // not a tail call: this frame stays on the stack
}

TYPED_TEST(PmrDeathTest, FreeTimeReportStartsAtTheProgramsFrame) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(64, 16);
  // #0 is the entry point the program called, inlined into its frame; the
  // SUMMARY names the program's own function. (POSIX regex: '.' spans lines.)
  EXPECT_DEATH(deallocate_twice(r, p),
               "deallocated by thread T[0-9]+ here:\n"
               "    #0 0x[0-9a-f]+ in std::pmr::memory_resource::deallocate\\(.*\n"
               "    #1 0x[0-9a-f]+ in guardarena::.*deallocate_twice.*"
               "SUMMARY: guardarena: double-free \\(64-byte block\\) in "
               "guardarena::.*::deallocate_twice[(].*pmr_death_test.cpp:[0-9]+\n");
}

TYPED_TEST(PmrDeathTest, ForeignPointerIsReported) {
  guarded_resource r{this->opts()};
  static char not_ours[64];
  EXPECT_DEATH(r.deallocate(not_ours, 64, 16),
               "invalid-free.*\n.*which was not returned by this allocator");
}

TYPED_TEST(PmrDeathTest, PointerFromAnotherResourceIsReported) {
  guarded_resource a{this->opts()};
  guarded_resource b{this->opts()};
  void* p = a.allocate(32, 16);
  EXPECT_DEATH(b.deallocate(p, 32, 16), "invalid-free");
}

TYPED_TEST(PmrDeathTest, InteriorPointerIsReported) {
  guarded_resource r{this->opts()};
  auto* p = static_cast<char*>(r.allocate(100, 16));
  EXPECT_DEATH(
      r.deallocate(p + 8, 92, 16),
      "invalid-free.*\n.*8 bytes from the start of the live 100-byte block.*interior pointer");
}

TYPED_TEST(PmrDeathTest, SizeMismatchIsReported) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(100, 16);
  EXPECT_DEATH(r.deallocate(p, 96, 16),
               "dealloc-size-mismatch.*\nmemory_resource::deallocate called with size 96 and "
               "alignment 16 for the 100-byte block");
}

TYPED_TEST(PmrDeathTest, AlignmentMismatchIsReported) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(100, 64);
  EXPECT_DEATH(r.deallocate(p, 100, 8),
               "dealloc-size-mismatch.*alignment 8.*allocated with alignment 64");
}

TYPED_TEST(PmrDeathTest, PointerAfterReleaseFaults) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(64, 16);
  r.release();
  // New blocks never reuse the released addresses while the reservation
  // has room, so the stale pointer still faults after the arena is reused.
  for (int i = 0; i < 100; ++i) EXPECT_NE(r.allocate(64, 16), p);
  EXPECT_EXIT(write_byte(p, 0), ::testing::KilledBySignal(SIGSEGV),
              "guardarena: use-after-release on address.*\nWRITE at .*\n.*handed out before its "
              "release\\(\\)");
}

TYPED_TEST(PmrDeathTest, ReleasedAddressSpaceIsRecycledWhenTheReservationIsFull) {
  // 4 chunks of 64 MiB: each release() retires the chunks in use; when no
  // fresh chunk is left the retired ones come back instead of failing.
  guarded_resource r{this->opts("reserve_size=256M:on_exhaustion=fail")};
  for (int round = 0; round < 20; ++round) {
    void* p = r.allocate(100, 16);
    static_cast<char*>(p)[99] = 1;
    r.release();
  }
  EXPECT_EQ(r.stats().failed_allocations, 0u);
}

TYPED_TEST(PmrDeathTest, ExitcodeOptionExitsInsteadOfReraising) {
  guarded_resource r{this->opts("exitcode=23")};
  void* p = r.allocate(64, 16);
  EXPECT_EXIT(write_byte(p, 64), ::testing::ExitedWithCode(23), "heap-buffer-overflow");
}

}  // namespace
}  // namespace guardarena
