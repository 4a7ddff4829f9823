// Bad requests and exhaustion at the pmr level. Each case must give the
// documented answer (a block, or std::bad_alloc), keep the blocks already
// handed out intact, and leave the resource (and the program) usable:
//   - impossible sizes (SIZE_MAX and neighbours), huge alignments, alignments
//     that are not powers of two (a pmr precondition: std::bad_alloc);
//   - address space exhausted by RLIMIT_AS (in a forked child);
//   - a quarantine bound far above RAM in full mode (quarantined pages go
//     back to the kernel, so only address space is held);
//   - more live resources than the fault handler's registry holds.
// The VMA budget of the mprotect backend is covered in tests/pmr/scale_test.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "os/os_linux.h"
#include "test_support.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GA_EXHAUSTION_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GA_EXHAUSTION_SANITIZER 1
#endif
#endif
#ifndef GA_EXHAUSTION_SANITIZER
#define GA_EXHAUSTION_SANITIZER 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define GA_EXHAUSTION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GA_EXHAUSTION_ASAN 1
#endif
#endif

#ifdef GA_EXHAUSTION_ASAN
// The fallback path hands impossible requests to posix_memalign, which under
// ASan aborts ("requested allocation size exceeds maximum supported size")
// instead of failing with ENOMEM as glibc does. Make ASan's allocator behave
// like glibc's for these tests; it changes nothing for requests that succeed.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1";
}
#endif

namespace guardarena {
namespace {

using testing::with_backend;

std::size_t rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * os::page_size();
}

std::size_t vsz_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0;
  statm >> size;
  return size * os::page_size();
}

// A few live blocks with known contents, checked after each bad request.
class Witnesses {
 public:
  explicit Witnesses(guarded_resource& r) : r_(r) {
    for (std::size_t i = 0; i < 8; ++i) {
      std::size_t size = 24 + i * 1000;
      auto* p = static_cast<unsigned char*>(r_.allocate(size, 16));
      std::memset(p, static_cast<int>(0xa0 + i), size);
      blocks_.push_back({p, size});
    }
  }
  ~Witnesses() {
    for (auto& b : blocks_) r_.deallocate(b.first, b.second, 16);
  }
  bool intact() const {
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      for (std::size_t k = 0; k < blocks_[i].second; ++k) {
        if (blocks_[i].first[k] != static_cast<unsigned char>(0xa0 + i)) return false;
      }
      if (!r_.owns(blocks_[i].first)) return false;
    }
    return true;
  }

 private:
  guarded_resource& r_;
  std::vector<std::pair<unsigned char*, std::size_t>> blocks_;
};

// Still usable: a fresh block round-trips.
bool still_usable(guarded_resource& r) {
  auto* p = static_cast<unsigned char*>(r.allocate(100, 16));
  std::memset(p, 7, 100);
  bool ok = r.owns(p) && p[99] == 7;
  r.deallocate(p, 100, 16);
  return ok;
}

template <class B>
class BadRequestTest : public testing::GuardSkippingTest<B> {};
TYPED_TEST_SUITE(BadRequestTest, testing::Backends, testing::BackendNames);

TYPED_TEST(BadRequestTest, ImpossibleSizesThrowBadAllocUnderBothPolicies) {
  for (const char* policy : {"on_exhaustion=fallback", "on_exhaustion=fail"}) {
    guarded_resource r{with_backend<TypeParam>(std::string(policy) + ":handle_segv=0")};
    Witnesses w(r);
    arena_stats before = r.stats();
    const std::size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2 + 1, SIZE_MAX / 2,
                                 std::size_t{1} << 62};
    for (std::size_t size : sizes) {
      for (std::size_t align : {std::size_t{1}, std::size_t{16}, std::size_t{4096}}) {
        EXPECT_THROW((void)r.allocate(size, align), std::bad_alloc)
            << policy << " size " << size << " align " << align;
      }
    }
    arena_stats after = r.stats();
    EXPECT_EQ(after.failed_allocations - before.failed_allocations, 15u) << policy;
    EXPECT_EQ(after.live_blocks, before.live_blocks);
    EXPECT_EQ(after.fallback_live, 0u);
    EXPECT_TRUE(w.intact()) << policy;
    EXPECT_TRUE(still_usable(r)) << policy;
  }
}

TYPED_TEST(BadRequestTest, HugeAlignmentsThrowBadAllocAndLargeOnesWork) {
  for (const char* policy : {"on_exhaustion=fallback", "on_exhaustion=fail"}) {
    guarded_resource r{with_backend<TypeParam>(std::string(policy) + ":handle_segv=0")};
    Witnesses w(r);
    // Above a quarter of the reservation: no slot can hold it, and the
    // fallback cannot either (a 2^40-aligned block needs 1 TiB of address
    // space from glibc; 2^63 is past what posix_memalign accepts).
    for (std::size_t align : {std::size_t{1} << 40, std::size_t{1} << 62, std::size_t{1} << 63}) {
#ifdef GA_EXHAUSTION_ASAN
      // GCC 12's ASan trips its own CHECK (asan_allocator.cpp:564, an
      // overflow) on posix_memalign(2^63); glibc answers EINVAL.
      if (align == std::size_t{1} << 63) continue;
#endif
      for (std::size_t size : {std::size_t{1}, std::size_t{4096}, SIZE_MAX}) {
        EXPECT_THROW((void)r.allocate(size, align), std::bad_alloc)
            << policy << " align " << align << " size " << size;
      }
    }
    // Large but reasonable alignments are guarded blocks like any other.
    for (std::size_t align : {std::size_t{1} << 16, std::size_t{1} << 20, std::size_t{1} << 24}) {
      auto* p = static_cast<unsigned char*>(r.allocate(100, align));
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << align;
      std::memset(p, 1, 100);
      EXPECT_TRUE(r.owns(p));
      r.deallocate(p, 100, align);
    }
    EXPECT_EQ(r.stats().fallback_allocations, 0u) << policy;
    EXPECT_TRUE(w.intact()) << policy;
    EXPECT_TRUE(still_usable(r)) << policy;
  }
}

// std::pmr::memory_resource::allocate requires a power-of-two alignment. The
// resource answers anything else with std::bad_alloc instead of a block that
// cannot honour it (a 24-aligned request used to come back 8-aligned).
TYPED_TEST(BadRequestTest, AlignmentsThatAreNotPowersOfTwoThrowBadAlloc) {
  guarded_resource r{with_backend<TypeParam>("handle_segv=0")};
  Witnesses w(r);
  arena_stats before = r.stats();
  for (std::size_t align :
       {std::size_t{0}, std::size_t{3}, std::size_t{12}, std::size_t{24}, std::size_t{48},
        std::size_t{4097}, std::size_t{1} << 20 | 1, SIZE_MAX}) {
    EXPECT_THROW((void)r.allocate(64, align), std::bad_alloc) << align;
  }
  arena_stats after = r.stats();
  EXPECT_EQ(after.guarded_allocations, before.guarded_allocations);
  EXPECT_EQ(after.fallback_allocations, before.fallback_allocations);
  EXPECT_TRUE(w.intact());
  EXPECT_TRUE(still_usable(r));
}

// Sizes just past what the reservation holds go to the fallback (and fail
// there when the machine cannot provide them) or throw under the fail policy.
TYPED_TEST(BadRequestTest, RequestsLargerThanTheReservationFallBackOrThrow) {
  for (const char* policy : {"on_exhaustion=fallback", "on_exhaustion=fail"}) {
    guarded_resource r{
        with_backend<TypeParam>(std::string(policy) + ":reserve_size=256M:handle_segv=0")};
    Witnesses w(r);
    const std::size_t size = 300u << 20;
    void* p = nullptr;
    try {
      p = r.allocate(size, 16);
    } catch (const std::bad_alloc&) {
    }
    if (std::string(policy) == "on_exhaustion=fail") {
      EXPECT_EQ(p, nullptr);
    } else {
      ASSERT_NE(p, nullptr) << "glibc could not provide 300 MiB";
      EXPECT_TRUE(r.owns(p));
      static_cast<char*>(p)[size - 1] = 1;
      EXPECT_EQ(r.stats().fallback_live, 1u);
      r.deallocate(p, size, 16);
    }
    EXPECT_EQ(r.stats().fallback_live, 0u);
    EXPECT_TRUE(w.intact()) << policy;
    EXPECT_TRUE(still_usable(r)) << policy;
  }
}

// Runs `body` in a forked child and returns its exit status; the child's
// stdout is passed through for the figures.
int in_child(void (*body)()) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    body();
    std::fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// RLIMIT_AS a little above what the process uses: the resource reserves less
// (it halves its reservation until the kernel agrees), blocks are served until
// the address space is gone, then the fallback (glibc, same limit) fails too
// and allocate() throws std::bad_alloc. Earlier blocks stay intact, freeing
// them makes room again.
void rlimit_child_body() {
  const std::size_t limit = vsz_bytes() + (768u << 20);
  rlimit rl{limit, limit};
  if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(10);
  for (const char* opts :
       {"backend=guard:mode=full:handle_segv=0", "backend=mprotect:mode=full:handle_segv=0",
        "backend=guard:mode=fast:handle_segv=0", "backend=mprotect:mode=fast:handle_segv=0"}) {
    if (std::strstr(opts, "guard:") != nullptr && !testing::guard_markers().present()) continue;
    std::unique_ptr<guarded_resource> r;
    try {
      r = std::make_unique<guarded_resource>(opts);
    } catch (const std::bad_alloc&) {
      _exit(11);  // 768 MiB leaves room for the smallest reservation
    }
    if (r->stats().reserved_bytes >= limit) _exit(12);
    std::vector<unsigned char*> blocks;
    const std::size_t size = 1u << 20;
    bool threw = false;
    while (blocks.size() < 4096) {
      try {
        auto* p = static_cast<unsigned char*>(r->allocate(size, 16));
        p[0] = static_cast<unsigned char>(blocks.size());
        p[size - 1] = static_cast<unsigned char>(blocks.size());
        blocks.push_back(p);
      } catch (const std::bad_alloc&) {
        threw = true;
        break;
      }
    }
    if (!threw) _exit(13);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (blocks[i][0] != static_cast<unsigned char>(i) ||
          blocks[i][size - 1] != static_cast<unsigned char>(i)) {
        _exit(14);
      }
    }
    arena_stats s = r->stats();
    std::printf(
        "[ figures  ] RLIMIT_AS %zu MiB, %s: reserved %llu MiB, %zu x 1 MiB blocks "
        "(%llu unguarded) before std::bad_alloc\n",
        limit >> 20, opts, static_cast<unsigned long long>(s.reserved_bytes >> 20), blocks.size(),
        static_cast<unsigned long long>(s.fallback_allocations));
    for (std::size_t i = 0; i < blocks.size(); ++i) r->deallocate(blocks[i], size, 16);
    try {
      r->deallocate(r->allocate(size, 16), size, 16);
    } catch (const std::bad_alloc&) {
      _exit(15);
    }
  }
  // Below the smallest reservation: the constructor itself throws.
  const std::size_t tight = vsz_bytes() + (16u << 20);
  rlimit rl2{tight, tight};
  if (setrlimit(RLIMIT_AS, &rl2) != 0) _exit(16);
  try {
    guarded_resource r{"handle_segv=0"};
    _exit(17);
  } catch (const std::bad_alloc&) {
  }
}

TEST(ExhaustionTest, AddressSpaceLimitGivesBadAllocNeverACrash) {
  if (GA_EXHAUSTION_SANITIZER) GTEST_SKIP() << "sanitizers reserve terabytes of shadow memory";
  int status = in_child(rlimit_child_body);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see rlimit_child_body for the failing step";
}

// quarantine_bytes=1T in full mode: quarantined slots are closed and their
// pages returned, so the bound only costs address space. Two runs of 1 MiB
// allocate/free pairs: with the default 64 GiB reservation, more than the
// machine's RAM ends up in quarantine at once; with an 8 GiB one, the
// reservation fills and the oldest quarantined slots are reused instead of
// falling back. RSS stays flat and so do the mappings (closed slots merge back
// into the PROT_NONE reservation on the mprotect backend).
TYPED_TEST(BadRequestTest, QuarantineLargerThanRamHoldsAddressSpaceNotMemory) {
  const std::size_t size = 1u << 20;
  const std::size_t ram = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * os::page_size();
  // The 64 GiB reservation holds 64,512 one-MiB slots; stay below that.
  const std::size_t beyond_ram = std::min<std::size_t>(ram / size + 4096, 60000);
  struct Run {
    const char* reserve;
    std::size_t rounds;
  };
  for (Run run : {Run{"64G", beyond_ram}, Run{"8G", 10000}}) {
    guarded_resource r{with_backend<TypeParam>(
        std::string("mode=full:quarantine_bytes=1T:quarantine_slots=16777216:handle_segv=0:") +
        "reserve_size=" + run.reserve)};
    Witnesses w(r);
    std::size_t rss_before = rss_bytes();
    std::size_t maps_before = os::count_mappings();
    std::uint64_t peak_quarantine = 0;
    for (std::size_t i = 0; i < run.rounds; ++i) {
      auto* p = static_cast<unsigned char*>(r.allocate(size, 16));
      p[0] = 1;
      p[size / 2] = 2;
      p[size - 1] = 3;
      r.deallocate(p, size, 16);
      if (i % 500 == 499 || i + 1 == run.rounds) {
        peak_quarantine = std::max(peak_quarantine, r.stats().quarantined_bytes);
      }
    }
    arena_stats s = r.stats();
    std::size_t rss_after = rss_bytes();
    std::size_t rss_growth = rss_after - std::min(rss_after, rss_before);
    std::size_t maps_after = os::count_mappings();
    std::printf(
        "[ figures  ] %s, reserve_size=%s: %zu x 1 MiB through a 1T quarantine: quarantine "
        "peak %llu MiB (RAM %zu MiB), RSS +%zu MiB, mappings %zu -> %zu\n",
        TypeParam::kName, run.reserve, run.rounds,
        static_cast<unsigned long long>(peak_quarantine >> 20), ram >> 20, rss_growth >> 20,
        maps_before, maps_after);
    if (run.rounds == beyond_ram && beyond_ram < 60000) {
      EXPECT_GT(peak_quarantine, ram) << "the quarantine held more than the machine's RAM";
    }
    EXPECT_LT(rss_growth, std::size_t{64} << 20);
    EXPECT_LT(maps_after, maps_before + 64);
    EXPECT_EQ(s.fallback_allocations, 0u) << run.reserve;
    EXPECT_EQ(s.failed_allocations, 0u) << run.reserve;
    EXPECT_TRUE(w.intact());
    EXPECT_TRUE(still_usable(r));
  }
}

// Once the reservation is full every block falls back to glibc. The set that
// tells those blocks from foreign pointers used tombstones that were never
// reclaimed: after about a million distinct fallback addresses no empty slot
// was left and owns()/deallocate() of a pointer not in the set spun forever.
// Three million fallback pairs at distinct addresses (a growing glibc heap),
// then lookups of a foreign pointer must still be immediate. In a child with
// an alarm, so a regression fails instead of hanging the suite.
void fallback_churn_child_body() {
  alarm(120);
  guarded_resource r{"reserve_size=256M:on_exhaustion=fallback:handle_segv=0:stack_depth=0"};
  std::vector<void*> fillers;
  for (int i = 0; i < 4; ++i) fillers.push_back(r.allocate(60u << 20, 16));  // every chunk taken
  if (r.stats().fallback_allocations != 0) _exit(20);
  const std::size_t pairs = GA_EXHAUSTION_SANITIZER ? 1000000 : 4000000;
  std::vector<void*> ballast;
  ballast.reserve(pairs);
  int foreign = 0;
  for (std::size_t i = 0; i < pairs; ++i) {
    void* p = r.allocate(16, 16);  // unguarded: a fresh address at the top of glibc's heap
    r.deallocate(p, 16, 16);
    ballast.push_back(std::malloc(16));  // takes that chunk: the next address is new again
  }
  arena_stats s = r.stats();
  if (s.fallback_allocations != pairs || s.fallback_live != 0) _exit(21);
  for (int i = 0; i < 1000; ++i) {
    if (r.owns(&foreign)) _exit(22);
  }
  for (void* b : ballast) std::free(b);
  for (void* f : fillers) r.deallocate(f, 60u << 20, 16);
  std::printf("[ figures  ] %zu fallback pairs at distinct addresses, then 1000 foreign lookups\n",
              pairs);
}

TEST(ExhaustionTest, FallbackChurnOverMillionsOfAddressesNeverHangsLookups) {
  ::testing::internal::CaptureStderr();  // the one-time fallback warning
  int status = in_child(fallback_churn_child_body);
  (void)::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status)
                                 << " (14: SIGALRM, the lookups hung)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see fallback_churn_child_body for the failing step";
}

// The fault handler's registry holds 256 arenas: one more is refused with
// std::bad_alloc (it would run without fault reports), and a slot frees as
// soon as a resource is destroyed.
TEST(ExhaustionTest, TheTwoHundredFiftySeventhLiveResourceThrowsBadAlloc) {
  std::vector<std::unique_ptr<guarded_resource>> many;
  bool threw = false;
  for (int i = 0; i < 300 && !threw; ++i) {
    try {
      many.push_back(std::make_unique<guarded_resource>("reserve_size=256M:handle_segv=0"));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
  }
  EXPECT_TRUE(threw);
  // Exactly 256: the 257th is the first refused, none before it.
  EXPECT_EQ(many.size(), 256u);
  Witnesses w(*many.front());
  many.pop_back();
  EXPECT_NO_THROW(
      many.push_back(std::make_unique<guarded_resource>("reserve_size=256M:handle_segv=0")));
  EXPECT_TRUE(w.intact());
  EXPECT_TRUE(still_usable(*many.back()));
}

}  // namespace
}  // namespace guardarena
