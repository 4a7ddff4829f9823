// The pmr resource through its public interface, on both backends.
#include "guardarena/guardarena.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <map>
#include <memory_resource>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "os/os_linux.h"
#include "test_support.h"

namespace guardarena {
namespace {

using testing::with_backend;

template <class B>
class GuardedResourceTest : public testing::GuardSkippingTest<B> {
 protected:
  static std::string opts(const std::string& extra = "") { return with_backend<B>(extra); }
};
TYPED_TEST_SUITE(GuardedResourceTest, testing::Backends, testing::BackendNames);

TYPED_TEST(GuardedResourceTest, ReportsTheBackendItRuns) {
  guarded_resource r{this->opts()};
  EXPECT_STREQ(r.stats().backend, TypeParam::kName);
}

TYPED_TEST(GuardedResourceTest, AllocatesWritableBlocksOfManySizes) {
  guarded_resource r{this->opts()};
  for (std::size_t size : {1u, 13u, 16u, 100u, 4095u, 4096u, 4097u, 65536u, 1u << 20, 20u << 20}) {
    auto* p = static_cast<unsigned char*>(r.allocate(size, 16));
    std::memset(p, 0x5a, size);
    EXPECT_EQ(p[size - 1], 0x5a);
    EXPECT_TRUE(r.owns(p));
    r.deallocate(p, size, 16);
    EXPECT_FALSE(r.owns(p));
  }
}

TYPED_TEST(GuardedResourceTest, HonoursEveryAlignmentUpTo64KiBAndBeyondThePage) {
  guarded_resource r{this->opts()};
  std::vector<std::size_t> aligns;
  for (std::size_t a = 1; a <= 64 * 1024; a <<= 1) aligns.push_back(a);
  aligns.push_back(os::page_size() * 4);
  aligns.push_back(std::size_t{1} << 21);  // 2 MiB, above any page size
  for (std::size_t align : aligns) {
    for (std::size_t size : {std::size_t{1}, std::size_t{24}, align, align + 1}) {
      void* p = r.allocate(size, align);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u)
          << "align " << align << " size " << size;
      std::memset(p, 1, size);
      r.deallocate(p, size, align);
    }
  }
}

TYPED_TEST(GuardedResourceTest, BlocksEndAtTheGuardWhenTheSizeIsAligned) {
  guarded_resource r{this->opts()};
  void* p = r.allocate(64, 16);
  EXPECT_EQ((reinterpret_cast<std::uintptr_t>(p) + 64) % os::page_size(), 0u);
  r.deallocate(p, 64, 16);
}

TYPED_TEST(GuardedResourceTest, CheckReportsDamagedLiveBlocksAndCountsThem) {
  guarded_resource r{this->opts()};
  auto* p = static_cast<unsigned char*>(r.allocate(13, 16));
  auto* q = static_cast<unsigned char*>(r.allocate(40, 16));
  EXPECT_EQ(r.check(), 0u);
  const unsigned char after = p[14];
  const unsigned char before = q[-1];
  p[14] = 'A';
  q[-1] = 'B';
  ::testing::internal::CaptureStderr();
  const std::size_t found = r.check();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(found, 2u);
  EXPECT_NE(err.find("heap-buffer-overflow"), std::string::npos) << err;
  EXPECT_NE(err.find("2 bytes written past the end of the 13-byte block"), std::string::npos)
      << err;
  EXPECT_NE(err.find("1 bytes written before the start of the 40-byte block"), std::string::npos)
      << err;
  EXPECT_NE(err.find("found by guarded_resource::check()"), std::string::npos) << err;
  // Repaired, so that the deallocations find intact canaries.
  p[14] = after;
  q[-1] = before;
  EXPECT_EQ(r.check(), 0u);
  r.deallocate(p, 13, 16);
  r.deallocate(q, 40, 16);
}

TYPED_TEST(GuardedResourceTest, ProtectBelowStartsBlocksAtThePage) {
  guarded_resource r{this->opts("protect_below=1")};
  void* p = r.allocate(100, 8);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % os::page_size(), 0u);
  r.deallocate(p, 100, 8);
}

TYPED_TEST(GuardedResourceTest, IsEqualOnlyToItself) {
  guarded_resource a{this->opts()};
  guarded_resource b{this->opts()};
  EXPECT_TRUE(a.is_equal(a));
  EXPECT_FALSE(a.is_equal(b));
  EXPECT_FALSE(a.is_equal(*std::pmr::new_delete_resource()));
}

TYPED_TEST(GuardedResourceTest, StatsCountLivePeakAndQuarantine) {
  guarded_resource r{this->opts("quarantine_slots=1000")};
  std::vector<void*> v;
  for (int i = 0; i < 10; ++i) v.push_back(r.allocate(100, 8));
  arena_stats s = r.stats();
  EXPECT_EQ(s.live_blocks, 10u);
  EXPECT_EQ(s.live_bytes, 1000u);
  for (int i = 0; i < 4; ++i) r.deallocate(v[i], 100, 8);
  s = r.stats();
  EXPECT_EQ(s.live_blocks, 6u);
  EXPECT_EQ(s.peak_live_blocks, 10u);
  EXPECT_EQ(s.peak_live_bytes, 1000u);
  EXPECT_EQ(s.quarantined_blocks, 4u);
  EXPECT_EQ(s.guarded_allocations, 10u);
  EXPECT_EQ(s.fallback_allocations, 0u);
  if (std::string(TypeParam::kName) == "mprotect") {
    EXPECT_EQ(s.vmas_in_use, 12u);  // two mappings per live island
  }
  for (int i = 4; i < 10; ++i) r.deallocate(v[i], 100, 8);
  EXPECT_EQ(r.stats().live_blocks, 0u);
}

TYPED_TEST(GuardedResourceTest, QuarantineIsFifoAndBoundedByCount) {
  guarded_resource r{this->opts("quarantine_slots=3")};
  std::vector<void*> v;
  for (int i = 0; i < 5; ++i) v.push_back(r.allocate(64, 16));
  for (void* p : v) r.deallocate(p, 64, 16);
  EXPECT_EQ(r.stats().quarantined_blocks, 3u);
  // v[0] and v[1] left quarantine (oldest first) and come back; nothing
  // still in quarantine is handed out. Full mode may hand out the one-page
  // slots it opened ahead in a batch before them, hence 40 allocations.
  std::vector<void*> got;
  for (int i = 0; i < 40; ++i) got.push_back(r.allocate(64, 16));
  auto seen = [&](void* p) { return std::find(got.begin(), got.end(), p) != got.end(); };
  EXPECT_TRUE(seen(v[0]));
  EXPECT_TRUE(seen(v[1]));
  EXPECT_FALSE(seen(v[2]));
  EXPECT_FALSE(seen(v[3]));
  EXPECT_FALSE(seen(v[4]));
  for (void* p : got) r.deallocate(p, 64, 16);
}

TYPED_TEST(GuardedResourceTest, QuarantineIsBoundedByBytes) {
  std::size_t ps = os::page_size();
  guarded_resource r{
      this->opts("quarantine_slots=1000:quarantine_bytes=" + std::to_string(3 * ps))};
  std::vector<void*> v;
  for (int i = 0; i < 8; ++i) v.push_back(r.allocate(64, 16));
  for (void* p : v) r.deallocate(p, 64, 16);
  EXPECT_EQ(r.stats().quarantined_blocks, 3u);
  EXPECT_EQ(r.stats().quarantined_bytes, 3 * ps);
}

TYPED_TEST(GuardedResourceTest, FreedBlocksComeBackZeroedInFullMode) {
  guarded_resource r{this->opts("quarantine_slots=0")};
  auto* p = static_cast<unsigned char*>(r.allocate(4096, 16));
  std::memset(p, 0xff, 4096);
  r.deallocate(p, 4096, 16);
  // quarantine_slots=0 puts the slot straight back on the free list; full
  // mode may still hand out the slots it opened ahead in a batch first.
  std::vector<unsigned char*> taken;
  unsigned char* q = nullptr;
  for (int i = 0; i < 64 && q != p; ++i) {
    q = static_cast<unsigned char*>(r.allocate(4096, 16));
    taken.push_back(q);
  }
  ASSERT_EQ(q, p) << "the freed slot is reused";
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[4095], 0);
  for (unsigned char* t : taken) r.deallocate(t, 4096, 16);
}

TYPED_TEST(GuardedResourceTest, ReleaseFreesEverythingInOneStep) {
  guarded_resource r{this->opts()};
  for (int i = 0; i < 1000; ++i) (void)r.allocate(static_cast<std::size_t>(i % 300 + 1), 8);
  (void)r.allocate(8 << 20, 64);
  EXPECT_EQ(r.stats().live_blocks, 1001u);
  r.release();
  arena_stats s = r.stats();
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.quarantined_blocks, 0u);
  EXPECT_EQ(s.vmas_in_use, 0u);
  // The arena is usable again afterwards.
  void* p = r.allocate(10, 8);
  std::memset(p, 1, 10);
  r.deallocate(p, 10, 8);
}

TYPED_TEST(GuardedResourceTest, DestructionReturnsTheAddressSpace) {
  std::size_t before = os::count_mappings();
  for (int i = 0; i < 20; ++i) {
    guarded_resource r{this->opts()};
    for (int j = 0; j < 100; ++j) (void)r.allocate(64, 16);
  }
  // A leak would leave several mappings per resource (60+ here); allow a
  // few for the test framework or a sanitizer runtime growing meanwhile.
  EXPECT_LE(os::count_mappings(), before + 10);
}

TYPED_TEST(GuardedResourceTest, ContainersWorkUnderChurn) {
  guarded_resource r{this->opts("quarantine_slots=256")};
  std::mt19937 rng(42);
  std::pmr::vector<std::pmr::string> strings{&r};
  std::pmr::map<int, std::pmr::string> ordered{&r};
  std::pmr::unordered_map<int, int> hashed{&r};
  std::pmr::list<int> linked{&r};
  std::map<int, std::string> model_ordered;
  std::unordered_map<int, int> model_hashed;
  for (int i = 0; i < 4000; ++i) {
    int k = static_cast<int>(rng() % 500);
    std::string text = "value-" + std::to_string(i) + std::string(rng() % 64, 'x');
    strings.emplace_back(text);
    ordered[k] = std::pmr::string(text, &r);
    model_ordered[k] = text;
    hashed[k] += i;
    model_hashed[k] += i;
    linked.push_back(i);
    if (i % 3 == 0) {
      ordered.erase(k + 1);
      model_ordered.erase(k + 1);
      hashed.erase(k + 2);
      model_hashed.erase(k + 2);
      linked.pop_front();
    }
    if (strings.size() > 300) strings.erase(strings.begin(), strings.begin() + 100);
  }
  ASSERT_EQ(ordered.size(), model_ordered.size());
  for (const auto& [k, v] : model_ordered) EXPECT_EQ(std::string_view(ordered.at(k)), v);
  ASSERT_EQ(hashed.size(), model_hashed.size());
  for (const auto& [k, v] : model_hashed) EXPECT_EQ(hashed.at(k), v);
  EXPECT_EQ(linked.back(), 3999);
}

TYPED_TEST(GuardedResourceTest, MonotonicBufferUpstreamWorks) {
  guarded_resource r{this->opts()};
  {
    std::pmr::monotonic_buffer_resource mono{&r};
    std::pmr::vector<std::pmr::string> v{&mono};
    for (int i = 0; i < 2000; ++i) v.emplace_back(std::string(40, static_cast<char>('a' + i % 26)));
    EXPECT_EQ(v[1999][0], static_cast<char>('a' + 1999 % 26));
    EXPECT_GT(r.stats().live_blocks, 0u);
  }
  EXPECT_EQ(r.stats().live_blocks, 0u) << "monotonic resource gives everything back";
}

TYPED_TEST(GuardedResourceTest, ThreadsAllocateAndFreeAcrossThreads) {
  guarded_resource r{this->opts("quarantine_slots=512")};
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::atomic<void*>> handoff(kThreads * 64);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < kPerThread; ++i) {
        std::size_t size = 16 + rng() % 2000;
        auto* p = static_cast<unsigned char*>(r.allocate(size, 16));
        std::memcpy(p, &size, sizeof size);  // the block carries its own size
        // Publish it; free whatever another thread published there.
        void* old = handoff[rng() % handoff.size()].exchange(p);
        if (old != nullptr) {
          std::size_t old_size = 0;
          std::memcpy(&old_size, old, sizeof old_size);
          r.deallocate(old, old_size, 16);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::size_t remaining = 0;
  for (auto& h : handoff) {
    if (void* p = h.load()) {
      std::size_t size = 0;
      std::memcpy(&size, p, sizeof size);
      r.deallocate(p, size, 16);
      ++remaining;
    }
  }
  arena_stats s = r.stats();
  EXPECT_EQ(s.guarded_allocations, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_GT(remaining, 0u);
}

TYPED_TEST(GuardedResourceTest, UnsynchronizedFlavourHasTheSameApi) {
  unsynchronized_guarded_resource r{this->opts()};
  std::pmr::vector<int> v{&r};
  for (int i = 0; i < 1000; ++i) v.push_back(i);
  EXPECT_EQ(v[999], 999);
  EXPECT_GT(r.stats().live_blocks, 0u);
}

TEST(GuardedResourceOptionsTest, BadOptionStringThrowsNamingTheKey) {
  try {
    guarded_resource r{"backend=quantum"};
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("backend"), std::string::npos);
  }
}

TEST(GuardedResourceOptionsTest, ConstructsFromAnOptionsObject) {
  options o;
  o.set("protect_below=1");
  guarded_resource r{o};
  EXPECT_EQ(r.get_options().get("protect_below"), "1");
  EXPECT_EQ(r.get_options().get("mode"), "full");
}

TEST(GuardedResourceOptionsTest, OptionsReadBackAsText) {
  options o{"mode=fast:quarantine_bytes=1M"};
  EXPECT_EQ(o.get("mode"), "fast");
  EXPECT_EQ(o.get("quarantine_bytes"), "1M");
  options copy = o;
  copy.set("mode=full");
  EXPECT_EQ(o.get("mode"), "fast") << "copies are independent";
  EXPECT_THROW(o.get("no_such_option"), std::invalid_argument);
}

TEST(GuardedResourceOptionsTest, BadSetLeavesTheOptionsAsTheyWere) {
  options o{"mode=fast"};
  EXPECT_THROW(o.set("mode=full:backend=quantum"), std::invalid_argument);
  EXPECT_EQ(o.get("mode"), "fast");
}

}  // namespace
}  // namespace guardarena
