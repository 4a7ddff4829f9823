#include "os/os_linux.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "os/guard_backend.h"
#include "support/kernel_facts.h"
#include "support/syscall_trace.h"
#include "test_support.h"

namespace guardarena::os {
namespace {

bool maps_contains(const std::string& needle) {
  std::ifstream f("/proc/self/maps");
  std::string line;
  while (std::getline(f, line)) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(OsTest, PageSizeComesFromSysconf) {
  EXPECT_EQ(page_size(), static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
}

TEST(OsTest, ReserveIsAlignedAndNamed) {
  std::size_t align = 64 * page_size();
  void* p = reserve(16 * page_size(), align, "guardarena:test-span");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
  // Kernels without CONFIG_ANON_VMA_NAME cannot name mappings.
  if (name_mapping(p, 16 * page_size(), "guardarena:test-span")) {
    EXPECT_TRUE(maps_contains("guardarena:test-span"));
  }
  release(p, 16 * page_size());
}

TEST(OsTest, ImpossibleReservationFailsWithoutCrashing) {
  EXPECT_EQ(reserve(std::size_t{1} << 62, page_size(), "huge"), nullptr);
}

// They run inside malloc and free, which must not change errno when they
// succeed: whatever their system calls did, errno is as the caller left it.
TEST(OsTest, MemoryCallsKeepErrno) {
  const std::size_t page = page_size();
  const bool markers = testing::guard_markers_here();  // probes (and sets errno) once
  char* p = static_cast<char*>(reserve(4 * page, page, "guardarena:test-errno"));
  ASSERT_NE(p, nullptr);
  errno = 4321;
  EXPECT_TRUE(protect_read_write(p + page, page));
  p[page] = 1;
  discard(p + page, page);
  EXPECT_EQ(errno, 4321);
  if (markers) {
    EXPECT_TRUE(guard_install(p + page, page));
    EXPECT_TRUE(guard_remove(p + page, page));
    // Misaligned: madvise fails with EINVAL, the call returns false.
    EXPECT_FALSE(guard_install(p + 1, page));
    EXPECT_FALSE(guard_remove(p + 1, page));
    EXPECT_EQ(errno, 4321);
  }
  release(p, 4 * page);
  EXPECT_EQ(errno, 4321);
}

TEST(OsTest, MaxMapCountAndMappingsAreRead) {
  EXPECT_GT(max_map_count(), 1000u);
  EXPECT_GT(count_mappings(), 5u);
}

// The library's probe against two facts it does not compute: the kernel
// version (MADV_GUARD_INSTALL is in Linux 6.13) and a direct madvise on a
// scratch page that must then fault (support/kernel_facts.cpp).
TEST(OsTest, GuardProbeMatchesTheKernel) {
  const testing::KernelFact& fact = testing::guard_markers();
  ASSERT_TRUE(fact.agree()) << "kernel version and direct probe disagree: " << fact.describe();
  EXPECT_EQ(guard_regions_supported(), fact.present()) << fact.describe();
}

template <class B>
class BackendTest : public ::testing::Test {};
using BackendTypes = ::testing::Types<GuardRegionBackend, MprotectBackend>;
TYPED_TEST_SUITE(BackendTest, BackendTypes);

TYPED_TEST(BackendTest, OpenCloseCycleZeroesAndProtects) {
  if (std::strcmp(TypeParam::kName, "guard") == 0) GUARDARENA_REQUIRE_GUARD_MARKERS();
  std::size_t ps = page_size();
  void* span = reserve(8 * ps, ps, "backend-test");
  ASSERT_NE(span, nullptr);
  ASSERT_TRUE(TypeParam::prepare_chunk(span, 8 * ps));
  auto* page = static_cast<char*>(span) + 2 * ps;
  ASSERT_TRUE(TypeParam::open(page, ps));
  page[0] = 42;
  ASSERT_TRUE(TypeParam::close(page, ps));
  ASSERT_TRUE(TypeParam::open(page, ps));
  EXPECT_EQ(page[0], 0) << "closed pages must come back zeroed";
  release(span, 8 * ps);
}

TYPED_TEST(BackendTest, ClosedPageFaults) {
  if (std::strcmp(TypeParam::kName, "guard") == 0) GUARDARENA_REQUIRE_GUARD_MARKERS();
  std::size_t ps = page_size();
  void* span = reserve(4 * ps, ps, "backend-death");
  ASSERT_TRUE(TypeParam::prepare_chunk(span, 4 * ps));
  auto* page = static_cast<volatile char*>(span) + ps;
  ASSERT_TRUE(TypeParam::open(const_cast<char*>(page), ps));
  page[0] = 1;
  ASSERT_TRUE(TypeParam::close(const_cast<char*>(page), ps));
  EXPECT_EXIT(page[0] = 2, ::testing::KilledBySignal(SIGSEGV), "");
  release(span, 4 * ps);
}

TEST(OsTest, GuardRegionsDoNotSplitVmas) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  std::size_t ps = page_size();
  std::size_t n = 64;
  void* span = reserve(n * 2 * ps, ps, "vma-count");
  ASSERT_TRUE(GuardRegionBackend::prepare_chunk(span, n * 2 * ps));
  std::size_t before = count_mappings();
  for (std::size_t i = 0; i < n; ++i)
    GuardRegionBackend::open(static_cast<char*>(span) + 2 * i * ps, ps);
  EXPECT_LE(count_mappings(), before + 1);
  release(span, n * 2 * ps);
}

TEST(OsTest, MprotectIslandsCostVmas) {
  std::size_t ps = page_size();
  std::size_t n = 64;
  void* span = reserve(n * 2 * ps, ps, "vma-count-mprotect");
  std::size_t before = count_mappings();
  for (std::size_t i = 0; i < n; ++i)
    MprotectBackend::open(static_cast<char*>(span) + 2 * i * ps, ps);
  EXPECT_GE(count_mappings(), before + 2 * n - 1);
  for (std::size_t i = 0; i < n; ++i)
    MprotectBackend::close(static_cast<char*>(span) + 2 * i * ps, ps);
  EXPECT_LE(count_mappings(), before + 1) << "closed islands must merge back";
  release(span, n * 2 * ps);
}

// open_many: every range opens, committed, in two syscalls for the batch
// where the kernel has process_madvise on PIDFD_SELF (Linux 6.15; version
// and a direct call must agree), else one failed batch and one madvise per
// range; the guard pages between stay. Counted by the kernel (ptrace) in a
// fresh child, where the batch has never been tried.
TEST(OsTest, OpenManyOpensEveryRangeAndKeepsTheGuardsBetween) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  const testing::KernelFact& batch = testing::batched_guard_remove();
  ASSERT_TRUE(batch.agree()) << "kernel version and direct probe disagree: " << batch.describe();
  std::string why_not;
  if (!testing::ptrace_permitted(&why_not)) GTEST_SKIP() << "cannot count syscalls: " << why_not;
  std::size_t ps = page_size();
  constexpr std::size_t kRanges = 8;
  auto* span = static_cast<char*>(reserve((2 * kRanges + 1) * ps, ps, "open-many"));
  ASSERT_NE(span, nullptr);
  ASSERT_TRUE(GuardRegionBackend::prepare_chunk(span, (2 * kRanges + 1) * ps));
  void* starts[kRanges];
  for (std::size_t i = 0; i < kRanges; ++i) starts[i] = span + (1 + 2 * i) * ps;
  testing::TracedRun run = testing::trace_child([&] {
    testing::begin_counting();
    std::size_t opened = GuardRegionBackend::open_many(starts, ps, kRanges);
    testing::end_counting();
    if (opened != kRanges) return 1;
    // Batched: the pages are committed already (no fault on first touch).
    unsigned char resident[2 * kRanges + 1];
    if (::mincore(span, (2 * kRanges + 1) * ps, resident) != 0) return 2;
    for (std::size_t i = 0; i < kRanges; ++i) {
      if (!(resident[1 + 2 * i] & 1)) testing::child_write("not resident\n");
    }
    return 0;
  });
  ASSERT_TRUE(run.traced) << run.why_not;
  ASSERT_TRUE(run.exited_ok()) << run.describe();
  if (batch.present()) {
    EXPECT_EQ(run.syscalls, 2u) << "one batch to remove, one to commit\n" << run.describe();
    EXPECT_EQ(run.out, "") << "batch-opened pages are committed\n" << run.describe();
  } else {
    EXPECT_EQ(run.syscalls, 1 + kRanges) << "one failed batch, then one madvise per range\n"
                                         << run.describe();
  }
  ASSERT_EQ(GuardRegionBackend::open_many(starts, ps, kRanges), kRanges);
  for (void* p : starts) std::memset(p, 0x5a, ps);
  EXPECT_EXIT(span[2 * ps] = 1, ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(span[0] = 1, ::testing::KilledBySignal(SIGSEGV), "");
  release(span, (2 * kRanges + 1) * ps);
}

TEST(OsTest, OpenManyStopsAtTheFirstRangeItCannotOpen) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  std::size_t ps = page_size();
  auto* span = static_cast<char*>(reserve(8 * ps, ps, "open-many-partial"));
  ASSERT_NE(span, nullptr);
  ASSERT_TRUE(GuardRegionBackend::prepare_chunk(span, 8 * ps));
  // The third range is not mapped at all (ENOMEM from the kernel).
  release(span + 6 * ps, 2 * ps);
  void* starts[3] = {span + ps, span + 3 * ps, span + 6 * ps};
  EXPECT_EQ(GuardRegionBackend::open_many(starts, ps, 3), 2u);
  std::memset(starts[0], 1, ps);
  std::memset(starts[1], 1, ps);
  release(span, 6 * ps);
}

}  // namespace
}  // namespace guardarena::os
