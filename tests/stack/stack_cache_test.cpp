// Tests for the allocator's capture path: capture_trimmed() (walk, trim and
// hash in one pass) and the per-thread cache in front of the depot. The cache
// must never answer with the id of a different stack: the tests give it call
// paths that share their innermost frames, forged hash collisions, a depot
// that was replaced, and several threads. Helpers are noinline so that each
// is a real frame.
#include "stack/stack_cache.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "report/report.h"
#include "stack/stack_trace.h"

// Counts malloc calls made by this thread while `t_count_mallocs` is set. The
// test binary's malloc forwards to glibc's; not under sanitizers, whose own
// malloc must stay in charge.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define GUARDARENA_TEST_COUNTS_MALLOC 1
extern "C" void* __libc_malloc(std::size_t);
namespace {
thread_local bool t_count_mallocs = false;
thread_local std::size_t t_mallocs = 0;
}  // namespace
extern "C" void* malloc(std::size_t n) {
  if (t_count_mallocs) ++t_mallocs;
  return __libc_malloc(n);
}
#endif

namespace guardarena::stack {
namespace {

constexpr std::size_t kDepth = 16;

struct Capture {
  std::size_t depth = kDepth;
  std::uintptr_t pcs[64] = {};
  std::size_t n = 0;
  std::uint64_t hash = 0;
  std::uint32_t id = 0;
};

// The innermost frames every path shares.
[[gnu::noinline]] void shared_leaf(StackDepot* depot, Capture* c) {
  c->n = capture_trimmed(c->pcs, c->depth, 0, CodeRange{}, 0, &c->hash);
  c->id = store_cached(*depot, c->pcs, c->n, c->hash);
  asm volatile("" ::: "memory");  // no tail calls: every helper keeps its frame
}
[[gnu::noinline]] void shared_middle(StackDepot* depot, Capture* c) {
  shared_leaf(depot, c);
  asm volatile("" ::: "memory");
}
// Distinct bodies: identical functions could be folded into one (-fipa-icf).
volatile int g_path = 0;

[[gnu::noinline]] void path_a(StackDepot* depot, Capture* c) {
  g_path = 1;
  shared_middle(depot, c);
  asm volatile("" ::: "memory");
}
[[gnu::noinline]] void path_b(StackDepot* depot, Capture* c) {
  g_path = 2;
  shared_middle(depot, c);
  asm volatile("" ::: "memory");
}

std::vector<std::uintptr_t> frames(const Capture& c) {
  return {c.pcs, c.pcs + c.n};
}

std::vector<std::uintptr_t> loaded(const StackDepot& depot, std::uint32_t id) {
  std::uintptr_t out[kMaxDepth];
  return {out, out + depot.load(id, out, kMaxDepth)};
}

std::vector<std::uintptr_t> fake_stack(std::uint64_t seed, std::size_t depth = 8) {
  std::vector<std::uintptr_t> pcs(depth);
  for (std::size_t i = 0; i < depth; ++i) pcs[i] = 0x500000 + seed * 0x1000 + i * 0x10;
  return pcs;
}

class StackCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(init_thread_stack_caches());
    ASSERT_TRUE(depot_.init(1 << 20));
  }
  void TearDown() override { depot_.release(); }
  StackDepot depot_;
};

TEST_F(StackCacheTest, WalkHashEqualsHashOfTheFrames) {
  Capture c;
  path_a(&depot_, &c);
  ASSERT_GE(c.n, 4u);
  EXPECT_EQ(c.hash, hash_frames(c.pcs, c.n));
}

TEST_F(StackCacheTest, PathsSharingInnerFramesGetTheirOwnStacks) {
  Capture a[2], b[2];
  // Three frames: shared_leaf, shared_middle, path_a or path_b. Further out
  // the test body's call sites (loop unrolled or not) would differ too.
  for (Capture* c : {&a[0], &a[1], &b[0], &b[1]}) c->depth = 3;
  // Interleaved, so that each lookup follows a cached entry of the other path.
  for (int i = 0; i < 2; ++i) {
    path_a(&depot_, &a[i]);
    path_b(&depot_, &b[i]);
  }
  const Capture &a1 = a[0], &a2 = a[1], &b1 = b[0], &b2 = b[1];
  ASSERT_NE(a1.id, 0u);
  ASSERT_NE(b1.id, 0u);
  // Same first two frames (inside shared_leaf, then shared_middle)...
  ASSERT_EQ(a1.n, 3u);
  ASSERT_EQ(b1.n, 3u);
  ASSERT_EQ(a1.pcs[0], b1.pcs[0]);
  ASSERT_EQ(a1.pcs[1], b1.pcs[1]);
  // ...different callers, so different stacks and ids.
  EXPECT_NE(a1.id, b1.id);
  EXPECT_EQ(a2.id, a1.id);
  EXPECT_EQ(b2.id, b1.id);
  EXPECT_EQ(loaded(depot_, a2.id), frames(a2));
  EXPECT_EQ(loaded(depot_, b2.id), frames(b2));
}

TEST_F(StackCacheTest, RepeatedStackIsAnsweredFromTheCache) {
  const auto pcs = fake_stack(1);
  const std::uint64_t hash = hash_frames(pcs.data(), pcs.size());
  const std::uint32_t id = store_cached(depot_, pcs.data(), pcs.size(), hash);
  ASSERT_NE(id, 0u);
  const ThreadStackCacheStats before = thread_stack_cache_stats_for_testing();
  ASSERT_TRUE(before.has_block);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(store_cached(depot_, pcs.data(), pcs.size(), hash), id);
  }
  const ThreadStackCacheStats after = thread_stack_cache_stats_for_testing();
  EXPECT_EQ(after.hits - before.hits, 100u);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(depot_.stats().entries, 1u);
}

// Two different stacks under one hash (forged: a real 64-bit collision cannot
// be produced on demand). The cache compares the frames, so the second stack
// does not get the first one's id.
TEST_F(StackCacheTest, ForgedHashCollisionGetsItsOwnId) {
  const auto first = fake_stack(2);
  const auto second = fake_stack(3);
  const std::uint64_t hash = hash_frames(first.data(), first.size());
  const std::uint32_t id_first = store_cached(depot_, first.data(), first.size(), hash);
  ASSERT_NE(id_first, 0u);
  const std::uint32_t id_second = store_cached(depot_, second.data(), second.size(), hash);
  EXPECT_NE(id_second, id_first);
  EXPECT_EQ(store_cached(depot_, first.data(), first.size(), hash), id_first);
  EXPECT_EQ(loaded(depot_, id_first), first);
}

TEST_F(StackCacheTest, PrefixOfACachedStackIsADifferentStack) {
  const auto full = fake_stack(4);
  const std::uint32_t id_full =
      store_cached(depot_, full.data(), full.size(), hash_frames(full.data(), full.size()));
  const std::uint32_t id_prefix =
      store_cached(depot_, full.data(), full.size() - 1, hash_frames(full.data(), full.size() - 1));
  ASSERT_NE(id_full, 0u);
  ASSERT_NE(id_prefix, 0u);
  EXPECT_NE(id_full, id_prefix);
  EXPECT_EQ(loaded(depot_, id_prefix).size(), full.size() - 1);
}

// Ids cached for one depot mean nothing in another: after a release and a new
// init the cache must ask the new depot.
TEST_F(StackCacheTest, ReplacedDepotIsNotAnsweredWithOldIds) {
  const auto pcs = fake_stack(5);
  const std::uint64_t hash = hash_frames(pcs.data(), pcs.size());
  ASSERT_NE(store_cached(depot_, pcs.data(), pcs.size(), hash), 0u);
  depot_.release();
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto other = fake_stack(6, 12);  // shifts the ids of later entries
  ASSERT_NE(depot_.store(other.data(), other.size()), 0u);
  const std::uint32_t id = store_cached(depot_, pcs.data(), pcs.size(), hash);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(loaded(depot_, id), pcs);
}

TEST_F(StackCacheTest, StacksDeeperThanTheCacheStillRoundTrip) {
  const auto deep = fake_stack(7, kCachedDepth + 8);
  const std::uint64_t hash = hash_frames(deep.data(), deep.size());
  const std::uint32_t id = store_cached(depot_, deep.data(), deep.size(), hash);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(store_cached(depot_, deep.data(), deep.size(), hash), id);
  EXPECT_EQ(loaded(depot_, id), deep);
  EXPECT_EQ(store_cached(depot_, deep.data(), 0, hash_frames(deep.data(), 0)), 0u);
}

TEST_F(StackCacheTest, SameStackFromTwoThreadsGetsOneId) {
  const auto pcs = fake_stack(8);
  const std::uint64_t hash = hash_frames(pcs.data(), pcs.size());
  std::uint32_t ids[2] = {};
  for (std::uint32_t& id : ids) {
    std::thread([&] {
      id = store_cached(depot_, pcs.data(), pcs.size(), hash);
      EXPECT_EQ(store_cached(depot_, pcs.data(), pcs.size(), hash), id);
    }).join();
  }
  ASSERT_NE(ids[0], 0u);
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_EQ(depot_.stats().entries, 1u);
}

TEST_F(StackCacheTest, ConcurrentThreadsNeverGetAnotherStacksId) {
  constexpr int kThreads = 4;
  constexpr std::uint64_t kStacks = 64;  // more than a thread's cache holds
  std::vector<std::uint32_t> expected(kStacks);
  for (std::uint64_t s = 0; s < kStacks; ++s) {
    const auto pcs = fake_stack(100 + s, 1 + s % kCachedDepth);
    expected[s] = depot_.store(pcs.data(), pcs.size());
    ASSERT_NE(expected[s], 0u);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        for (std::uint64_t i = 0; i < kStacks; ++i) {
          const std::uint64_t s = (i * 7 + static_cast<std::uint64_t>(t) * 13) % kStacks;
          const auto pcs = fake_stack(100 + s, 1 + s % kCachedDepth);
          ASSERT_EQ(
              store_cached(depot_, pcs.data(), pcs.size(), hash_frames(pcs.data(), pcs.size())),
              expected[s]);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
}

TEST_F(StackCacheTest, ThreadExitGivesTheBlockBack) {
  const std::size_t base = thread_stack_caches_in_use_for_testing();
  for (int i = 0; i < 50; ++i) {
    std::thread([&] {
      Capture c;
      path_a(&depot_, &c);
      EXPECT_TRUE(thread_stack_cache_stats_for_testing().has_block);
      EXPECT_EQ(thread_stack_caches_in_use_for_testing(), base + 1);
    }).join();
  }
  EXPECT_EQ(thread_stack_caches_in_use_for_testing(), base);
}

// Every capture writes its thread's block (a busy flag, counters): blocks of
// threads running at once must not share a cache line, or two threads that
// only allocate would slow each other down.
TEST_F(StackCacheTest, ThreadsGetBlocksOnSeparateCacheLines) {
  constexpr int kThreads = 4;
  std::vector<std::uintptr_t> blocks(kThreads);
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Capture c;
      shared_leaf(&depot_, &c);  // not path_a: its g_path store would race
      blocks[static_cast<std::size_t>(t)] = thread_stack_cache_stats_for_testing().block;
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();  // all alive at once
    });
  }
  for (auto& th : threads) th.join();
  std::sort(blocks.begin(), blocks.end());
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_NE(blocks[static_cast<std::size_t>(t)], 0u);
    EXPECT_EQ(blocks[static_cast<std::size_t>(t)] % 64, 0u);
    if (t > 0) {
      // The next block starts a whole block further, past the last line the
      // previous one writes (its memo counters sit at its end).
      EXPECT_GE(blocks[static_cast<std::size_t>(t)] - blocks[static_cast<std::size_t>(t) - 1],
                4096u);
    }
  }
}

TEST(CaptureTrimmedTest, KeepsAtMostMaxDepthFrames) {
  std::uintptr_t pcs[8] = {};
  std::uint64_t hash = 0;
  EXPECT_EQ(capture_trimmed(pcs, 2, 0, CodeRange{}, 0, &hash), 2u);
  EXPECT_EQ(pcs[2], 0u);
  EXPECT_EQ(hash, hash_frames(pcs, 2));
  EXPECT_EQ(capture_trimmed(pcs, 0, 0, CodeRange{}, 0, &hash), 0u);
  EXPECT_EQ(hash, hash_frames(pcs, 0));
  EXPECT_EQ(capture_trimmed(nullptr, 4, 0, CodeRange{}, 0, &hash), 0u);
}

[[gnu::noinline]] std::size_t trimmed_inner(std::uintptr_t* pcs, CodeRange trim,
                                            std::size_t max_trim) {
  std::uint64_t hash = 0;
  const std::size_t n = capture_trimmed(pcs, kDepth, 0, trim, max_trim, &hash);
  asm volatile("" ::: "memory");
  return n;
}
[[gnu::noinline]] std::size_t trimmed_outer(std::uintptr_t* pcs, CodeRange trim,
                                            std::size_t max_trim) {
  const std::size_t n = trimmed_inner(pcs, trim, max_trim);
  asm volatile("" ::: "memory");
  return n;
}

// One call site, so that frames 0..2 are the same in every capture.
[[gnu::noinline]] std::size_t trimmed_capture(std::uintptr_t* pcs, CodeRange trim,
                                              std::size_t max_trim) {
  const std::size_t n = trimmed_outer(pcs, trim, max_trim);
  asm volatile("" ::: "memory");
  return n;
}

TEST(CaptureTrimmedTest, TrimsLeadingFramesInTheRangeOnly) {
  std::uintptr_t full[kDepth] = {};
  const std::size_t n = trimmed_capture(full, CodeRange{}, 0);
  ASSERT_GE(n, 4u);
  // Drop the frame in trimmed_inner (pcs[0]): it is the only one in range.
  const CodeRange inner{full[0], full[0] + 1};
  std::uintptr_t pcs[kDepth] = {};
  ASSERT_EQ(trimmed_capture(pcs, inner, 8), n - 1);
  EXPECT_EQ(pcs[0], full[1]);
  // A range that matches every frame still trims no more than max_trim.
  ASSERT_EQ(trimmed_capture(pcs, CodeRange{0, UINTPTR_MAX}, 2), n - 2);
  EXPECT_EQ(pcs[0], full[2]);
  // Trimming stops at the first frame outside the range: full[1]'s range
  // does not trim it when full[0] comes first.
  ASSERT_EQ(trimmed_capture(pcs, CodeRange{full[1], full[1] + 1}, 8), n);
  EXPECT_EQ(pcs[1], full[1]);
}

// A fake stack of frame records for walk_trimmed() and its trail: records at
// words 0, 8 and 16, each {next_fp, return address}; the top is the end of
// the array. By default the chain is 0 -> 8, and record 8's next_fp is a
// small integer (what code without frame pointers leaves in rbp), which ends
// the walk after two frames.
struct FakeStack {
  alignas(16) std::uintptr_t words[64] = {};
  std::uintptr_t at(std::size_t i) const { return reinterpret_cast<std::uintptr_t>(&words[i]); }
  std::uintptr_t top() const { return at(64); }
  FakeStack() {
    words[0] = at(8);
    words[1] = 0x401000;
    words[8] = 7;
    words[9] = 0x402000;
    words[16] = 0;
    words[17] = 0x403000;
  }
  std::size_t walk(std::size_t depth, WalkTrail* trail, std::uintptr_t* pcs) const {
    std::uint64_t hash = 0;
    return walk_trimmed(at(0), top(), pcs, depth, 0, CodeRange{}, 0, &hash, trail);
  }
};

TEST(WalkTrailTest, LastFramePointerMayChangeWhileItStillEndsTheWalk) {
  FakeStack s;
  WalkTrail trail;
  std::uintptr_t pcs[kDepth] = {};
  ASSERT_EQ(s.walk(kDepth, &trail, pcs), 2u);
  // Below the record, at it, misaligned, past the step limit, too close to
  // the top: each ends the walk as 7 did.
  for (const std::uintptr_t v : {std::uintptr_t{8}, std::uintptr_t{0}, s.at(8), s.at(10) + 1,
                                 s.at(8) + (1u << 20) + 8, s.at(63), UINTPTR_MAX - 7}) {
    s.words[8] = v;
    EXPECT_TRUE(trail.still_holds()) << v;
    std::uintptr_t again[kDepth] = {};
    ASSERT_EQ(s.walk(kDepth, nullptr, again), 2u) << v;
    EXPECT_EQ(again[1], 0x402000u);
  }
}

TEST(WalkTrailTest, LastFramePointerThatWouldBeFollowedBreaksTheTrail) {
  FakeStack s;
  WalkTrail trail;
  std::uintptr_t pcs[kDepth] = {};
  ASSERT_EQ(s.walk(kDepth, &trail, pcs), 2u);
  s.words[63] = 0x404000;
  // The next record, and the highest one that still fits below the top.
  for (const std::uintptr_t v : {s.at(16), s.at(62)}) {
    s.words[8] = v;
    EXPECT_FALSE(trail.still_holds()) << v;
    std::uintptr_t again[kDepth] = {};
    EXPECT_EQ(s.walk(kDepth, nullptr, again), 3u) << v;
  }
}

TEST(WalkTrailTest, EarlierFramePointersMustStayExact) {
  FakeStack s;
  WalkTrail trail;
  std::uintptr_t pcs[kDepth] = {};
  ASSERT_EQ(s.walk(kDepth, &trail, pcs), 2u);
  s.words[16] = 7;
  s.words[17] = 0x402000;
  s.words[0] = s.at(16);  // the same values, read from another record
  EXPECT_FALSE(trail.still_holds());
}

TEST(WalkTrailTest, ReturnAddressOfTheLastRecordMustStayExact) {
  FakeStack s;
  WalkTrail trail;
  std::uintptr_t pcs[kDepth] = {};
  ASSERT_EQ(s.walk(kDepth, &trail, pcs), 2u);
  s.words[9] = 0x402008;
  EXPECT_FALSE(trail.still_holds());
}

TEST(WalkTrailTest, WalkEndedByDepthIgnoresTheLastFramePointer) {
  FakeStack s;
  WalkTrail trail;
  std::uintptr_t pcs[kDepth] = {};
  ASSERT_EQ(s.walk(2, &trail, pcs), 2u);
  s.words[8] = s.at(16);  // now followed, but the walk is full before
  EXPECT_TRUE(trail.still_holds());
  std::uintptr_t again[kDepth] = {};
  EXPECT_EQ(s.walk(2, nullptr, again), 2u);
}

// capture_cached() against the walk and the cache it stands for: both run
// from the same function with skip = 1, so both drop that function's own
// return address and see the same frames.
struct Pair {
  std::uint32_t memoized = 0;  // capture_cached()
  std::uint32_t walked = 0;    // capture_trimmed() + store_cached()
};

[[gnu::noinline]] void capture_both(StackDepot* depot, std::size_t depth, Pair* out) {
  out->memoized = capture_cached(*depot, depth, 1, CodeRange{}, 0);
  std::uintptr_t pcs[64];
  std::uint64_t hash = 0;
  const std::size_t n = capture_trimmed(pcs, depth, 1, CodeRange{}, 0, &hash);
  out->walked = store_cached(*depot, pcs, n, hash);
  asm volatile("" ::: "memory");
}

// A chain of `levels` frames, then `leaf` (capture_both() unless told): the
// frames differ only in the outermost caller (memo_outer_x or _y), `levels` +
// 1 frames out.
using Leaf = void (*)(StackDepot*, std::size_t, Pair*);
[[gnu::noinline]] void memo_chain(StackDepot* depot, std::size_t depth, int levels, Pair* out,
                                  Leaf leaf) {
  if (levels == 0) {
    leaf(depot, depth, out);
  } else {
    memo_chain(depot, depth, levels - 1, out, leaf);
  }
  asm volatile("" ::: "memory");
}
[[gnu::noinline]] void memo_outer_x(StackDepot* depot, std::size_t depth, int levels, Pair* out,
                                    Leaf leaf = capture_both) {
  g_path = 5;
  memo_chain(depot, depth, levels, out, leaf);
  asm volatile("" ::: "memory");
}
[[gnu::noinline]] void memo_outer_y(StackDepot* depot, std::size_t depth, int levels, Pair* out,
                                    Leaf leaf = capture_both) {
  g_path = 6;
  memo_chain(depot, depth, levels, out, leaf);
  asm volatile("" ::: "memory");
}

TEST_F(StackCacheTest, MemoAnswersARepeatedStackWithItsId) {
  Pair p[51];
  std::uint64_t before = 0;
  for (int i = 0; i < 51; ++i) {  // one call site: one stack
    memo_outer_x(&depot_, kDepth, 3, &p[i]);
    if (i == 0) before = thread_stack_cache_stats_for_testing().memo_walks;
  }
  ASSERT_NE(p[0].memoized, 0u);
  for (const Pair& q : p) {
    ASSERT_EQ(q.memoized, p[0].memoized);
    ASSERT_EQ(q.walked, p[0].memoized);
  }
  // The 50 repeats are all memo hits: none walks again.
  EXPECT_EQ(thread_stack_cache_stats_for_testing().memo_walks - before, 0u);
}

// Programs allocate from many call sites in turn: a memo of a few entries
// would walk for every one of them. Twelve sites (twelve start frames) in
// turn, three rounds after the first: the memo answers at least half of the
// captures (all of them unless three sites share a set; which set a site
// gets depends on where the stack is mapped).
TEST_F(StackCacheTest, MemoAnswersManyCallSitesInTurn) {
  constexpr int kSites = 12;
  constexpr int kRounds = 3;
  Pair p;
  for (int site = 0; site < kSites; ++site) memo_outer_x(&depot_, kDepth, site, &p);
  const std::uint64_t before = thread_stack_cache_stats_for_testing().memo_walks;
  for (int round = 0; round < kRounds; ++round) {
    for (int site = 0; site < kSites; ++site) {
      memo_outer_x(&depot_, kDepth, site, &p);
      ASSERT_NE(p.memoized, 0u);
      ASSERT_EQ(p.memoized, p.walked) << site;
    }
  }
  EXPECT_LE(thread_stack_cache_stats_for_testing().memo_walks - before, kSites * kRounds / 2);
}

// The walk starts at the same frame for both callers and reads the same
// records up to the outermost one that differs: the memo must see it.
TEST_F(StackCacheTest, MemoSeesAFrameThatChangedFarOut) {
  const std::uint64_t before = thread_stack_cache_stats_for_testing().memo_walks;
  for (int levels : {0, 3, 9}) {
    Pair x[3], y[3];
    for (int i = 0; i < 3; ++i) {
      memo_outer_x(&depot_, kDepth, levels, &x[i]);
      memo_outer_y(&depot_, kDepth, levels, &y[i]);
    }
    for (int i = 0; i < 3; ++i) {
      ASSERT_NE(x[i].memoized, 0u);
      EXPECT_EQ(x[i].memoized, x[i].walked) << levels;
      EXPECT_EQ(y[i].memoized, y[i].walked) << levels;
      EXPECT_NE(x[i].memoized, y[i].memoized) << levels;
    }
  }
  // Both callers share the memo's key (start frame, first return address):
  // after the first walk of each, the key's other entry answers, and only
  // the first capture of each caller and level walks.
  EXPECT_EQ(thread_stack_cache_stats_for_testing().memo_walks - before, 6u);
}

// Past the configured depth the callers differ only in frames that are not
// kept: the memo answers with the one stack both have.
TEST_F(StackCacheTest, MemoKeepsToTheDepthItWasAskedFor) {
  Pair x, y, x_short, y_short;
  memo_outer_x(&depot_, kDepth, 9, &x);
  memo_outer_y(&depot_, kDepth, 9, &y);
  memo_outer_x(&depot_, 4, 9, &x_short);
  memo_outer_y(&depot_, 4, 9, &y_short);
  EXPECT_NE(x.memoized, y.memoized);
  EXPECT_EQ(x_short.memoized, x_short.walked);
  EXPECT_EQ(y_short.memoized, x_short.memoized);
  EXPECT_EQ(loaded(depot_, x_short.memoized).size(), 4u);
}

TEST_F(StackCacheTest, MemoForgetsTheIdsOfAReplacedDepot) {
  Pair before, after;
  memo_outer_x(&depot_, kDepth, 2, &before);
  ASSERT_NE(before.memoized, 0u);
  depot_.release();
  ASSERT_TRUE(depot_.init(1 << 20));
  const auto other = fake_stack(9, 12);  // takes the first id of the new depot
  ASSERT_NE(depot_.store(other.data(), other.size()), 0u);
  memo_outer_x(&depot_, kDepth, 2, &after);
  ASSERT_NE(after.memoized, 0u);
  EXPECT_EQ(after.memoized, after.walked);
  EXPECT_NE(loaded(depot_, after.memoized), other);
}

// The LD_PRELOAD shim's way: its entry point marks its own frame, and the
// allocator's hook, further down, tries capture_memoized() and then
// capture_cached(); both must answer with the stack walked from the marked
// frame (the skip is then ignored).
[[gnu::noinline]] std::uint32_t capture_below_entry(StackDepot* depot, std::size_t depth) {
  std::uint32_t id = capture_memoized(*depot, depth, CodeRange{}, 0);
  if (id == 0) id = capture_cached(*depot, depth, 7, CodeRange{}, 0);
  asm volatile("" ::: "memory");
  return id;
}

[[gnu::noinline]] void entry_both(StackDepot* depot, std::size_t depth, Pair* out) {
  const auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  const std::uintptr_t saved = t_allocator_entry;
  t_allocator_entry = fp;
  out->memoized = capture_below_entry(depot, depth);
  t_allocator_entry = saved;
  std::uintptr_t pcs[64];
  std::uint64_t hash = 0;
  const std::size_t n =
      walk_trimmed(fp, stack_top_of(fp), pcs, depth, 0, CodeRange{}, 0, &hash, nullptr);
  out->walked = store_cached(*depot, pcs, n, hash);
  asm volatile("" ::: "memory");
}

TEST_F(StackCacheTest, WalksFromAMarkedEntryFrameAreExactAndMemoized) {
  const std::uint64_t before = thread_stack_cache_stats_for_testing().memo_walks;
  for (int levels : {0, 3, 9}) {
    Pair x[3], y[3];
    for (int i = 0; i < 3; ++i) {
      memo_outer_x(&depot_, kDepth, levels, &x[i], entry_both);
      memo_outer_y(&depot_, kDepth, levels, &y[i], entry_both);
    }
    for (int i = 0; i < 3; ++i) {
      ASSERT_NE(x[i].memoized, 0u);
      EXPECT_EQ(x[i].memoized, x[i].walked) << levels;
      EXPECT_EQ(y[i].memoized, y[i].walked) << levels;
      EXPECT_NE(x[i].memoized, y[i].memoized) << levels;
    }
  }
  // The second and third rounds of each caller are memo hits: of the 18
  // captures, only the first of each caller and level walks.
  EXPECT_LE(thread_stack_cache_stats_for_testing().memo_walks - before, 6u);
}

// Unmarked, or marked with a frame that is not above the capture (a stale
// mark), the mark is ignored: capture_memoized() has no answer and reads
// nothing there, capture_cached() walks from its own frame as before.
TEST_F(StackCacheTest, AMarkThatIsNotACallersFrameIsIgnored) {
  ASSERT_EQ(t_allocator_entry, 0u);
  for (const std::uintptr_t mark : {std::uintptr_t{0}, std::uintptr_t{16}}) {
    // Warm the memo with the parameters capture_memoized() uses, so that
    // only the check of the mark stands between it and reading at `mark`.
    Pair marked;
    for (int i = 0; i < 3; ++i) memo_outer_x(&depot_, kDepth, 2, &marked, entry_both);
    t_allocator_entry = mark;
    const std::uint32_t probed = capture_memoized(depot_, kDepth, CodeRange{}, 0);
    Pair p;
    for (int i = 0; i < 3; ++i) memo_outer_x(&depot_, kDepth, 2, &p);
    t_allocator_entry = 0;
    EXPECT_EQ(probed, 0u) << mark;
    ASSERT_NE(p.memoized, 0u) << mark;
    EXPECT_EQ(p.memoized, p.walked) << mark;
  }
}

// Deeper than the cache: no memo, same answer as the walk.
TEST_F(StackCacheTest, DeepCapturesBypassTheMemo) {
  Pair p;
  const std::uint64_t before = thread_stack_cache_stats_for_testing().memo_walks;
  for (int i = 0; i < 3; ++i) {
    memo_outer_x(&depot_, 40, 30, &p);
    ASSERT_NE(p.memoized, 0u);
    EXPECT_EQ(p.memoized, p.walked);
  }
  EXPECT_EQ(thread_stack_cache_stats_for_testing().memo_walks, before);  // never recorded
  EXPECT_GT(loaded(depot_, p.memoized).size(), kCachedDepth);
}

#ifdef GUARDARENA_TEST_COUNTS_MALLOC
TEST_F(StackCacheTest, CaptureAndStoreMakeNoMallocCall) {
  std::thread([&] {  // a fresh thread: takes its cache block on the way
    t_count_mallocs = true;
    Capture a, b;
    Pair m;
    for (int i = 0; i < 10; ++i) {
      path_a(&depot_, &a);
      path_b(&depot_, &b);
      memo_outer_x(&depot_, kDepth, 2, &m);
    }
    t_count_mallocs = false;
    EXPECT_NE(m.memoized, 0u);
    EXPECT_NE(a.id, 0u);
    EXPECT_EQ(t_mallocs, 0u);
  })
      .join();
}
#endif

// The allocator's own path (report::capture_stack, as the arena's hook does):
// two call sites that share inner frames keep their own stacks.
[[gnu::noinline]] std::uint32_t site_leaf() {
  const std::uint32_t id = report::capture_stack(0);
  asm volatile("" ::: "memory");
  return id;
}
[[gnu::noinline]] std::uint32_t site_a() {
  g_path = 3;
  const std::uint32_t id = site_leaf();
  asm volatile("" ::: "memory");
  return id;
}
[[gnu::noinline]] std::uint32_t site_b() {
  g_path = 4;
  const std::uint32_t id = site_leaf();
  asm volatile("" ::: "memory");
  return id;
}

// Calls site_a() and site_b() alternately, `rounds` times each: each must
// answer with one nonzero id every time, and the two ids must differ.
struct SiteIds {
  std::uint32_t a = 0;
  std::uint32_t b = 0;
  std::uint64_t memo_walks_after_first_round = 0;
};
SiteIds expect_stable_distinct_ids(std::uint32_t (*site_a)(), std::uint32_t (*site_b)(),
                                   int rounds) {
  SiteIds ids;
  for (int i = 0; i < rounds; ++i) {
    const std::uint32_t a = site_a();
    const std::uint32_t b = site_b();
    if (i == 0) {
      ids = {a, b, thread_stack_cache_stats_for_testing().memo_walks};
      EXPECT_NE(a, 0u);
      EXPECT_NE(b, 0u);
      EXPECT_NE(a, b);
    } else {
      EXPECT_EQ(a, ids.a) << "round " << i;
      EXPECT_EQ(b, ids.b) << "round " << i;
    }
  }
  return ids;
}

TEST(StackCaptureGlueTest, CallSitesSharingInnerFramesKeepTheirStacks) {
  guarded_resource res{"stack_depth=16:handle_segv=0"};  // configures the depot
  const SiteIds ids = expect_stable_distinct_ids(site_a, site_b, 3);
  std::uintptr_t pa[64], pb[64];
  const std::size_t na = report::load_stack(ids.a, pa, 64);
  const std::size_t nb = report::load_stack(ids.b, pb, 64);
  ASSERT_GE(na, 3u);
  ASSERT_GE(nb, 3u);
  // Same innermost frame (the call in site_leaf), different stacks further out.
  EXPECT_EQ(pa[0], pb[0]);
  EXPECT_NE(std::vector<std::uintptr_t>(pa, pa + na), std::vector<std::uintptr_t>(pb, pb + nb));
}

// The allocator's hook below a marked entry frame (as the shim's entry
// points mark theirs): a call site seen before is answered by the memo, and
// each call site keeps its own stack.
[[gnu::noinline]] std::uint32_t marked_entry() {
  const EntryFrameScope scope(__builtin_frame_address(0));
  const std::uint32_t id = site_leaf();
  asm volatile("" ::: "memory");
  return id;
}
[[gnu::noinline]] std::uint32_t marked_from_a() {
  const std::uint32_t id = marked_entry();
  asm volatile("" ::: "memory");
  return id;
}
[[gnu::noinline]] std::uint32_t marked_from_b() {
  const std::uint32_t id = marked_entry();
  asm volatile("" ::: "memory");
  return id;
}

TEST(StackCaptureGlueTest, MarkedEntriesAreMemoHitsWithTheirOwnStacks) {
  guarded_resource res{"stack_depth=16:handle_segv=0"};  // configures the depot
  const SiteIds ids = expect_stable_distinct_ids(marked_from_a, marked_from_b, 4);
  // Only the first round walked.
  EXPECT_EQ(thread_stack_cache_stats_for_testing().memo_walks, ids.memo_walks_after_first_round);
  // The stack starts at the marked frame's caller: the frames below the
  // mark are the allocator's.
  std::uintptr_t pa[64], pb[64];
  const std::size_t na = report::load_stack(ids.a, pa, 64);
  const std::size_t nb = report::load_stack(ids.b, pb, 64);
  ASSERT_GE(na, 2u);
  ASSERT_GE(nb, 2u);
  const auto in = [](std::uintptr_t pc, std::uint32_t (*fn)()) {
    const auto start = reinterpret_cast<std::uintptr_t>(fn);
    return pc > start && pc < start + 256;  // a call return inside a small function
  };
  EXPECT_TRUE(in(pa[0], marked_from_a));
  EXPECT_TRUE(in(pb[0], marked_from_b));
}

// A new configuration (here a smaller depth: a resource created with other
// options) makes every memo of the old one stale: the memo checks one stamp
// per configuration, and the same call site gets the new depth at once.
TEST(StackCaptureGlueTest, ReconfiguringInvalidatesTheMemo) {
  const char* configs[] = {"stack_depth=16:handle_segv=0", "stack_depth=2:handle_segv=0",
                           "stack_depth=16:handle_segv=0"};
  std::size_t frames[3][3] = {};
  std::uint64_t walks[3][3] = {};
  for (int phase = 0; phase < 3; ++phase) {
    guarded_resource r{configs[phase]};  // configures the capture
    for (int i = 0; i < 3; ++i) {
      std::uintptr_t pcs[64];
      frames[phase][i] = report::load_stack(marked_from_a(), pcs, 64);  // one call site
      walks[phase][i] = thread_stack_cache_stats_for_testing().memo_walks;
    }
  }
  ASSERT_GT(frames[0][0], 2u);
  for (int phase = 0; phase < 3; ++phase) {
    // A new configuration's first capture walks, even back to an old depth.
    if (phase > 0) {
      EXPECT_GT(walks[phase][0], walks[phase - 1][2]) << "phase " << phase;
    }
    // The first capture of each configuration walks; the others are memo hits.
    EXPECT_EQ(walks[phase][2], walks[phase][0]) << "phase " << phase;
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(frames[phase][i], phase == 1 ? 2u : frames[0][0]) << "phase " << phase << " #" << i;
  }
}

// The configured capture's memo checks one stamp, not the depot's
// generation: a reset of the configured depot must turn it off, or a call
// site seen before would get an id of the old depot.
TEST(StackCaptureGlueTest, AResetOfTheConfiguredDepotTurnsTheMemoOff) {
  ASSERT_TRUE(init_thread_stack_caches());
  StackDepot depot;
  ASSERT_TRUE(depot.init(1 << 20));
  // One frame (the return into marked_from_a(), whose one call of
  // marked_entry() starts the walk): the same stack wherever the compiler
  // places the loop's calls. report::capture_stack() is the configured
  // capture.
  configure_capture(depot, 1, CodeRange{0, 0}, 8);
  std::uint32_t ids[4] = {};
  for (int round = 0; round < 4; ++round) {
    if (round == 2) {
      depot.release();
      ASSERT_TRUE(depot.init(1 << 20));
    }
    ids[round] = marked_from_a();
  }
  std::uintptr_t pcs[64];
  EXPECT_EQ(ids[1], ids[0]);
  // After the reset, the call site's id is one of the new depot's (a stale
  // one names nothing there: nothing else stores into it), the same for
  // both captures.
  EXPECT_EQ(ids[3], ids[2]);
  EXPECT_GT(depot.load(ids[3], pcs, 64), 0u);
  // Back to the process's own depot before this one goes away.
  guarded_resource reconfigure{"stack_depth=16:handle_segv=0"};
}

}  // namespace
}  // namespace guardarena::stack
