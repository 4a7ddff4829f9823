// Fast mode (mode=fast): guard pages stay for a slot's life, freed blocks are
// poisoned and recycled through per-thread caches. Overflows still fault at
// once; a write after free is reported when the slot is reused.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iterator>
#include <memory_resource>
#include <random>
#include <thread>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "os/guard_backend.h"
#include "os/os_linux.h"
#include "support/kernel_facts.h"
#include "support/syscall_trace.h"
#include "test_support.h"

namespace guardarena {
namespace {

using testing::with_backend;

#define GA_NOINLINE [[gnu::noinline, gnu::optimize("O0")]]
GA_NOINLINE void write_byte(void* p, std::ptrdiff_t at) {
  static_cast<volatile char*>(p)[at] = 1;
}

template <class B>
class FastModeTest : public testing::GuardSkippingTest<B> {
 protected:
  static std::string opts(const std::string& extra = "") {
    return with_backend<B>(extra.empty() ? "mode=fast" : "mode=fast:" + extra);
  }
};
TYPED_TEST_SUITE(FastModeTest, testing::Backends, testing::BackendNames);

template <class B>
using FastModeDeathTest = FastModeTest<B>;
TYPED_TEST_SUITE(FastModeDeathTest, testing::Backends, testing::BackendNames);

// Syscall counts below are the kernel's (ptrace on a forked child, see
// support/syscall_trace.h), so a call in any hot path counts, whether or
// not the library meant to make it.
#define REQUIRE_PTRACE()                                    \
  do {                                                      \
    std::string why_not;                                    \
    if (!testing::ptrace_permitted(&why_not))               \
      GTEST_SKIP() << "cannot count syscalls: " << why_not; \
  } while (0)

TYPED_TEST(FastModeTest, SteadyStateChurnMakesNoSyscalls) {
  REQUIRE_PTRACE();
  testing::TracedRun run = testing::trace_child([&] {
    guarded_resource r{this->opts("quarantine_slots=64")};
    for (int i = 0; i < 2000; ++i) r.deallocate(r.allocate(64, 16), 64, 16);  // warm up
    testing::begin_counting();
    for (int i = 0; i < 20000; ++i) {
      void* p = r.allocate(64, 16);
      std::memset(p, i & 0xff, 64);
      r.deallocate(p, 64, 16);
    }
    testing::end_counting();
    return 0;
  });
  ASSERT_TRUE(run.exited_ok()) << run.describe();
  EXPECT_EQ(run.syscalls, 0u) << run.describe();
}

TYPED_TEST(FastModeTest, FullModeUsesAtMostTwoSyscallsPerPair) {
  REQUIRE_PTRACE();
  testing::TracedRun run = testing::trace_child([&] {
    guarded_resource r{with_backend<TypeParam>("quarantine_slots=64")};
    for (int i = 0; i < 200; ++i) r.deallocate(r.allocate(64, 16), 64, 16);
    testing::begin_counting();
    for (int i = 0; i < 1000; ++i) r.deallocate(r.allocate(64, 16), 64, 16);
    testing::end_counting();
    return 0;
  });
  ASSERT_TRUE(run.exited_ok()) << run.describe();
  EXPECT_LE(run.syscalls, 2000u) << run.describe();
}

// Full mode on the guard backend (the mprotect backend has no batch): one-
// page slots are opened 16 at a time (two syscalls for the batch, pages
// committed), so a pair costs the MADV_GUARD_INSTALL at free plus 1/8 of a
// syscall, and no page fault. Where the kernel has no
// process_madvise(PIDFD_SELF) (before 6.15; uname and a direct call must
// agree) there is nothing to batch with.
TEST(FullModeBatchTest, GuardBackendOpensOnePageSlotsInBatches) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  const testing::KernelFact& batch = testing::batched_guard_remove();
  ASSERT_TRUE(batch.agree()) << "kernel version and direct probe disagree: " << batch.describe();
  if (!batch.present()) GTEST_SKIP() << "nothing to batch with here: " << batch.describe();
  REQUIRE_PTRACE();
  constexpr int kPairs = 1600;
  testing::TracedRun run = testing::trace_child([&] {
    guarded_resource r{"backend=guard:quarantine_slots=64"};
    for (int i = 0; i < 200; ++i) r.deallocate(r.allocate(64, 16), 64, 16);
    int dirty = 0;
    testing::begin_counting();
    for (int i = 0; i < kPairs; ++i) {
      auto* p = static_cast<unsigned char*>(r.allocate(64, 16));
      dirty += p[0] != 0;  // a batch-opened slot is a fresh page
      std::memset(p, 0x11, 64);
      r.deallocate(p, 64, 16);
    }
    testing::end_counting();
    return dirty == 0 ? 0 : 3;
  });
  ASSERT_TRUE(run.exited_ok()) << "exit 3: a reused slot was not zero\n" << run.describe();
  EXPECT_LE(run.syscalls, kPairs + 2u * (kPairs / 16) + 2) << run.describe();
  // Committed by the batch: no page fault per slot on first touch.
  if (run.faults_counted) {
    EXPECT_LT(run.minor_faults, kPairs / 16u) << run.describe();
  }
}

// A churn like allocation-heavy programs make (mostly small blocks, a few
// up to 64 KiB, a live set of a few thousand that keeps growing and
// shrinking by thousands): slots move between the quarantine, the
// thread's and the class's free lists, and the class list crosses its
// resident bound again and again. The kernel sees (almost) nothing of it:
// the few calls left are batches closing or reopening many slots at once.
struct MixedChurn {
  std::uint64_t rng = 88172645463325252ull;
  std::uint64_t next() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
  std::size_t size() {
    const std::uint64_t r = next() % 100;
    if (r < 33) return 1 + next() % 16;
    if (r < 86) return 17 + next() % 48;
    if (r < 96) return 65 + next() % 192;
    return 257 + next() % (65536 - 257);
  }
  // Runs until `allocations` blocks were allocated; returns how many were.
  std::uint64_t run(std::pmr::memory_resource& r, std::uint64_t allocations) {
    constexpr std::size_t kSlots = 16384;
    static void* live[kSlots];
    static std::size_t sizes[kSlots];
    std::uint64_t done = 0;
    for (std::uint64_t step = 0; done < allocations; ++step) {
      // The live set drifts between about 2,000 and 6,500 blocks: the
      // class's free list swings by more than its resident bound.
      const std::size_t window = 4000 + 3000 * ((step / 40000) % 4);
      // Blocks past a shrunk window go soon.
      const std::size_t k = window + next() % (kSlots - window);
      if (live[k] != nullptr) {
        r.deallocate(live[k], sizes[k], 16);
        live[k] = nullptr;
      }
      const std::size_t j = next() % window;
      if (live[j] != nullptr) {
        r.deallocate(live[j], sizes[j], 16);
        live[j] = nullptr;
      } else {
        sizes[j] = size();
        live[j] = r.allocate(sizes[j], 16);
        std::memset(live[j], 1, std::min<std::size_t>(sizes[j], 64));
        ++done;
      }
    }
    return done;
  }
};

TEST(FastModeSyscallTest, MixedSizeChurnMakesAtMostOneSyscallPerThousandAllocations) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  const testing::KernelFact& batch = testing::batched_guard_remove();
  if (!batch.present()) GTEST_SKIP() << "no batched guard calls here: " << batch.describe();
  REQUIRE_PTRACE();
  constexpr std::uint64_t kAllocations = 300000;
  testing::TracedRun run = testing::trace_child([&] {
    guarded_resource r{"backend=guard:mode=fast"};
    MixedChurn churn;
    churn.run(r, 100000);  // the heap grows to its largest live set
    testing::begin_counting();
    churn.run(r, kAllocations);
    testing::end_counting();
    return 0;
  });
  ASSERT_TRUE(run.exited_ok()) << run.describe();
  // A few dozen batches here; one call per slot closed or reopened would be
  // tens of thousands.
  EXPECT_LE(run.syscalls * 1000, kAllocations) << run.describe();
}

// The live set really shrinks: the pages of the freed slots go back to the
// kernel past the resident bound, many slots per call.
TEST(FastModeSyscallTest, ShrinkingLiveSetReturnsPagesInBatches) {
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  const testing::KernelFact& batch = testing::batched_guard_remove();
  if (!batch.present()) GTEST_SKIP() << "no batched guard calls here: " << batch.describe();
  REQUIRE_PTRACE();
  constexpr int kBlocks = 20000;
  testing::TracedRun run = testing::trace_child([&] {
    guarded_resource r{"backend=guard:mode=fast"};
    static void* v[kBlocks];
    testing::begin_counting();
    for (void*& p : v) {
      p = r.allocate(64, 16);
      static_cast<char*>(p)[0] = 1;
    }
    for (void* p : v) r.deallocate(p, 64, 16);
    testing::end_counting();
    return 0;
  });
  ASSERT_TRUE(run.exited_ok()) << run.describe();
  // 20,000 slots opened and most of them closed again: a few dozen calls
  // (chunks, batches), not one or two per slot.
  EXPECT_LE(run.syscalls, 100u) << run.describe();
}

// Fast mode's quarantine and free lists are per thread: in steady state a
// slot a thread freed comes back to that thread, so two churning threads
// never hand slots (and their cache lines) to each other.
TYPED_TEST(FastModeTest, ThreadsReuseTheirOwnSlots) {
  guarded_resource r{this->opts("quarantine_slots=256")};
  std::vector<std::uintptr_t> seen[2];
  std::atomic<int> started{0}, recorded{0};
  auto wait_for = [](std::atomic<int>& n) {
    n.fetch_add(1);
    while (n.load() < 2) std::this_thread::yield();
  };
  // Both threads are alive while either records (a thread that exits hands
  // its slots back to the class, legitimately).
  auto churn = [&](int t) {
    wait_for(started);
    for (int i = 0; i < 6000; ++i) {
      if (i == 5000) wait_for(recorded);
      void* p = r.allocate(64, 16);
      std::memset(p, t, 64);
      if (i >= 3000 && i < 5000) seen[t].push_back(reinterpret_cast<std::uintptr_t>(p));
      r.deallocate(p, 64, 16);
    }
  };
  std::thread a(churn, 0), b(churn, 1);
  a.join();
  b.join();
  for (auto& v : seen) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  std::vector<std::uintptr_t> shared;
  std::set_intersection(seen[0].begin(), seen[0].end(), seen[1].begin(), seen[1].end(),
                        std::back_inserter(shared));
  // A few cross while the threads' shares of the budget settle (a thread
  // that starts first holds the whole budget, then gives half back through
  // the class free list); with one shared free list most slots would.
  EXPECT_LT(shared.size(), std::min(seen[0].size(), seen[1].size()) / 4)
      << shared.size() << " of " << seen[0].size() << " slots went between the threads";
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

// One thread has the whole budget: a freed block is not handed out again
// before quarantine_slots - ThreadCache::kEvictAhead other frees.
TYPED_TEST(FastModeTest, OneThreadGetsTheWholeQuarantine) {
  guarded_resource r{this->opts("quarantine_slots=64")};
  void* first = r.allocate(64, 16);
  r.deallocate(first, 64, 16);
  for (int i = 0; i < 64 - 8 - 1; ++i) {
    void* p = r.allocate(64, 16);
    ASSERT_NE(p, first) << "reused after " << i << " frees";
    r.deallocate(p, 64, 16);
  }
}

TYPED_TEST(FastModeTest, ReusedBlocksAreUsableAndCallocStyleZeroingWorks) {
  guarded_resource r{this->opts("quarantine_slots=4")};
  std::vector<void*> v;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 20; ++i) {
      auto* p = static_cast<unsigned char*>(r.allocate(100 + static_cast<std::size_t>(i), 16));
      std::memset(p, round, 100 + static_cast<std::size_t>(i));
      v.push_back(p);
    }
    for (std::size_t i = 0; i < v.size(); ++i) r.deallocate(v[i], 100 + i, 16);
    v.clear();
  }
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

TYPED_TEST(FastModeTest, StatsBalanceAfterThreadsExit) {
  guarded_resource r{this->opts("quarantine_slots=256")};
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  std::vector<std::atomic<void*>> handoff(256);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < kOps; ++i) {
        std::size_t size = 16 + rng() % 1000;
        void* p = r.allocate(size, 16);
        std::memcpy(p, &size, sizeof size);
        if (void* old = handoff[rng() % handoff.size()].exchange(p)) {
          std::size_t old_size = 0;
          std::memcpy(&old_size, old, sizeof old_size);
          r.deallocate(old, old_size, 16);  // often another thread's block
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::uint64_t left = 0;
  for (auto& h : handoff) {
    if (void* p = h.load()) {
      std::size_t size = 0;
      std::memcpy(&size, p, sizeof size);
      r.deallocate(p, size, 16);
      ++left;
    }
  }
  arena_stats s = r.stats();
  EXPECT_EQ(s.guarded_allocations, static_cast<std::uint64_t>(kThreads) * kOps);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_GT(left, 0u);
}

TYPED_TEST(FastModeTest, ReleaseInvalidatesThreadCaches) {
  guarded_resource r{this->opts()};
  std::vector<void*> v;
  for (int i = 0; i < 100; ++i) v.push_back(r.allocate(64, 16));
  for (void* p : v) r.deallocate(p, 64, 16);
  r.release();
  // Cached slot ids from before release() must not be handed out twice.
  std::vector<void*> w;
  for (int i = 0; i < 200; ++i) w.push_back(r.allocate(64, 16));
  std::sort(w.begin(), w.end());
  EXPECT_EQ(std::adjacent_find(w.begin(), w.end()), w.end());
  for (void* p : w) r.deallocate(p, 64, 16);
}

TYPED_TEST(FastModeTest, OneThreadAlternatingBetweenResources) {
  guarded_resource a{this->opts()};
  guarded_resource b{this->opts()};
  for (int i = 0; i < 1000; ++i) {
    void* p = a.allocate(32, 16);
    void* q = b.allocate(32, 16);
    EXPECT_TRUE(a.owns(p));
    EXPECT_TRUE(b.owns(q));
    a.deallocate(p, 32, 16);
    b.deallocate(q, 32, 16);
  }
  EXPECT_EQ(a.stats().live_blocks, 0u);
  EXPECT_EQ(b.stats().live_blocks, 0u);
  EXPECT_EQ(a.stats().guarded_allocations, 1000u);
}

TYPED_TEST(FastModeTest, ResidentMemoryOfFreedSlotsIsBounded) {
  guarded_resource r{this->opts("quarantine_slots=16")};
  std::vector<void*> v;
  for (int i = 0; i < 20000; ++i) v.push_back(r.allocate(64, 16));
  for (void* p : v) static_cast<char*>(p)[0] = 1;
  for (void* p : v) r.deallocate(p, 64, 16);
  // 20000 pages were touched; after the frees only a bounded number of them
  // may stay resident: 8 MiB per class on the class free list, plus the
  // thread's own free list (ThreadCache::kFreeCap = 64 slots) and its
  // quarantine (16).
  std::size_t resident = 0;
  unsigned char vec = 0;
  for (void* p : v) {
    auto page = reinterpret_cast<std::uintptr_t>(p) & ~(os::page_size() - 1);
    if (mincore(reinterpret_cast<void*>(page), 1, &vec) == 0 && (vec & 1)) ++resident;
  }
  EXPECT_LE(resident * os::page_size(), (8u << 20) + (64 + 16 + 8) * os::page_size());
}

TYPED_TEST(FastModeDeathTest, OverflowStillFaultsAtOnce) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(64, 16);
  EXPECT_EXIT(write_byte(p, 64), ::testing::KilledBySignal(SIGSEGV),
              "heap-buffer-overflow.*\nWRITE");
}

TYPED_TEST(FastModeDeathTest, WriteAfterFreeIsReportedWhenTheSlotIsReused) {
  guarded_resource r{this->opts("quarantine_slots=1")};
  EXPECT_DEATH(
      {
        void* p = r.allocate(80, 16);
        r.deallocate(p, 80, 16);
        write_byte(p, 5);  // lands in poison: no fault in fast mode
        for (int i = 0; i < 200; ++i) r.deallocate(r.allocate(80, 16), 80, 16);
      },
      "heap-use-after-free.*\nwrite after free: byte 5 of the freed 80-byte block.*changed");
}

// Two threads with warm caches (so both take the short free path) free the
// same block at once: one compare-exchange wins, the other free is reported.
TYPED_TEST(FastModeDeathTest, RacingDoubleFreeIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        guarded_resource r{this->opts()};
        void* shared = r.allocate(48, 16);
        std::atomic<int> ready{0};
        auto racer = [&] {
          for (int i = 0; i < 300; ++i) r.deallocate(r.allocate(48, 16), 48, 16);
          ready.fetch_add(1);
          while (ready.load() < 2) {
          }
          r.deallocate(shared, 48, 16);
        };
        std::thread a(racer);
        std::thread b(racer);
        a.join();
        b.join();
      },
      "ERROR: guardarena: double-free.*\nattempting double-free of 0x[0-9a-f]+ \\(48-byte "
      "block\\)");
}

// The poison and lead-canary checks look at 16-byte words, overlapping at
// the end: a changed first or last byte must be found for a block of one
// word, of a length between words, and of exactly four.
TYPED_TEST(FastModeDeathTest, FirstAndLastBytesOfPoisonAndCanaryAreChecked) {
  for (std::size_t size : {16, 40, 64}) {
    for (std::size_t at : {std::size_t{0}, size - 1}) {
      EXPECT_DEATH(
          {
            guarded_resource r{this->opts("quarantine_slots=1")};
            void* p = r.allocate(size, 16);
            r.deallocate(p, size, 16);
            write_byte(p, static_cast<std::ptrdiff_t>(at));
            for (int i = 0; i < 200; ++i) r.deallocate(r.allocate(size, 16), size, 16);
          },
          "write after free: byte " + std::to_string(at) + " of the freed " + std::to_string(size) +
              "-byte block");
    }
  }
  // The canaries around a block, first and last byte of each: the tail is 63
  // bytes of alignment slack after a 1-byte block aligned to 64 (the general
  // path places it), 15, 7 or 1 bytes after blocks of 1, 25 and 15 bytes on
  // the fast path; the lead the 64 bytes below a block.
  struct Canary {
    std::size_t size, align;
    std::ptrdiff_t at;
    const char* kind;
  };
  for (const Canary& c :
       {Canary{1, 64, 1, "heap-buffer-overflow"}, Canary{1, 64, 63, "heap-buffer-overflow"},
        Canary{1, 16, 1, "heap-buffer-overflow"}, Canary{1, 16, 15, "heap-buffer-overflow"},
        Canary{25, 16, 25, "heap-buffer-overflow"}, Canary{25, 16, 31, "heap-buffer-overflow"},
        Canary{15, 16, 15, "heap-buffer-overflow"}, Canary{64, 16, -64, "heap-buffer-underflow"},
        Canary{64, 16, -1, "heap-buffer-underflow"}}) {
    EXPECT_DEATH(
        {
          guarded_resource r{this->opts()};
          void* p = r.allocate(c.size, c.align);
          write_byte(p, c.at);
          r.deallocate(p, c.size, c.align);
        },
        c.kind);
  }
}

}  // namespace
}  // namespace guardarena
