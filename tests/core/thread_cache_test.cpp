// core/thread_cache.h: fast mode's hand-back protocol, driven directly on
// arenas made with Arena::create.
#include "core/thread_cache.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <new>
#include <thread>
#include <vector>

#include "core/arena.h"

namespace guardarena {
namespace {

struct ArenaHolder {
  ArenaHolder() {
    Options o;
    o.mode = Mode::kFast;
    o.reserve_size = std::size_t{1} << 30;
    storage = ::operator new (Arena::storage_size(), std::align_val_t{64});
    arena = Arena::create(storage, o, FallbackAllocator{}, nullptr);
  }
  ~ArenaHolder() {
    if (arena != nullptr) arena->~Arena();
    ::operator delete (storage, std::align_val_t{64});
  }
  // Allocates n 64-byte blocks onto `kept`, then frees the last `freed` of them.
  void churn(std::vector<void*>& kept, int n, int freed) const {
    for (int i = 0; i < n; ++i) kept.push_back(arena->allocate(64, 16, AllocKind::kMalloc, false));
    for (int i = 0; i < freed; ++i) {
      arena->deallocate(kept.back(), 0, 0, AllocKind::kMalloc);
      kept.pop_back();
    }
  }
  void* storage = nullptr;
  Arena* arena = nullptr;
};

TEST(ThreadCacheTest, AllocatingAttachesTheCallingThreadsCache) {
  ArenaHolder h;
  ASSERT_NE(h.arena, nullptr);
  void* p = h.arena->allocate(64, 16, AllocKind::kMalloc, false);
  EXPECT_EQ(t_cache.owner, h.arena);
  EXPECT_EQ(t_cache.epoch, h.arena->epoch());
  h.arena->deallocate(p, 0, 0, AllocKind::kMalloc);
}

TEST(ThreadCacheTest, ThreadExitHandsTheCacheBack) {
  ArenaHolder h;
  ASSERT_NE(h.arena, nullptr);
  std::vector<void*> kept;
  std::thread([&] { h.churn(kept, 10, 5); }).join();
  // The thread's counts and quarantine reached the arena when it exited.
  ArenaStats s = h.arena->stats();
  EXPECT_EQ(s.live_blocks, 5u);
  EXPECT_EQ(s.guarded_allocations, 10u);
  EXPECT_EQ(s.quarantined_blocks, 5u);
  for (void* p : kept) h.arena->deallocate(p, 0, 0, AllocKind::kMalloc);
}

// The thread's quarantine reaches the arena's statistics once, however many
// times its counts are folded in (at each refill, and at exit).
TEST(ThreadCacheTest, QuarantineCountsOnceAcrossRefillsAndExit) {
  ArenaHolder h;
  ASSERT_NE(h.arena, nullptr);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<void*> kept;
  ArenaStats during{};
  std::thread([&] {
    h.churn(kept, 20, 10);
    h.churn(kept, 100, 0);  // several refills of 16, each folding the thread's counts
    during = h.arena->stats();
  }).join();
  EXPECT_EQ(during.quarantined_blocks, 10u) << "folded at the refills";
  const ArenaStats after = h.arena->stats();
  EXPECT_EQ(after.quarantined_blocks, 10u);
  EXPECT_EQ(after.quarantined_bytes, 10 * page);
  EXPECT_EQ(after.live_blocks, 110u);
  for (void* p : kept) h.arena->deallocate(p, 0, 0, AllocKind::kMalloc);
  EXPECT_EQ(h.arena->stats().live_blocks, 0u);
}

TEST(ThreadCacheTest, HandBackMovesCountsIntoTheOwner) {
  ArenaHolder h;
  ASSERT_NE(h.arena, nullptr);
  std::thread([&] {
    void* p = h.arena->allocate(64, 16, AllocKind::kMalloc, false);
    h.arena->deallocate(p, 0, 0, AllocKind::kMalloc);
    (void)h.arena->allocate(64, 16, AllocKind::kMalloc, false);
    return_cache_to_owner(t_cache);
    EXPECT_EQ(t_cache.live_blocks, 0) << "deltas folded into the arena";
    EXPECT_TRUE(t_cache.quarantine.empty());
    t_cache.owner = nullptr;  // handed back: thread exit has nothing left to give
  }).join();
  EXPECT_EQ(h.arena->stats().live_blocks, 1u);
}

TEST(ThreadCacheTest, CacheOfADestroyedArenaIsDropped) {
  auto first = std::make_unique<ArenaHolder>();
  ArenaHolder second;
  ASSERT_NE(first->arena, nullptr);
  ASSERT_NE(second.arena, nullptr);
  std::thread([&] {
    void* p = first->arena->allocate(64, 16, AllocKind::kMalloc, false);
    first->arena->deallocate(p, 0, 0, AllocKind::kMalloc);
    Arena* gone = first->arena;
    first.reset();  // destroyed while this thread's cache still names it
    EXPECT_FALSE(Arena::is_current(gone, t_cache.epoch));
    // Switching arenas hands back to the stale owner: skipped, not a write
    // into freed memory.
    void* q = second.arena->allocate(64, 16, AllocKind::kMalloc, false);
    EXPECT_EQ(t_cache.owner, second.arena);
    EXPECT_TRUE(t_cache.quarantine.empty());
    second.arena->deallocate(q, 0, 0, AllocKind::kMalloc);
  }).join();
  EXPECT_EQ(second.arena->stats().live_blocks, 0u);
}

TEST(ThreadCacheTest, HandbackLockKeepsHandBacksOutWhileWriteLocked) {
  handback_lock().lock();
  EXPECT_FALSE(handback_lock().try_lock());
  handback_lock().unlock();
  EXPECT_TRUE(handback_lock().try_lock());
  handback_lock().unlock();
}

}  // namespace
}  // namespace guardarena
