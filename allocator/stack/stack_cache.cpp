// Per-thread caches of recently stored stacks (see stack_cache.h). Runs inside
// malloc, free and signal handlers: no malloc, no locks; the only shared state
// is a lock-free free list of blocks and the block span, mapped once.
#include "stack/stack_cache.h"

#include <pthread.h>

#include <atomic>
#include <bit>
#include <cstring>
#include <type_traits>

#include "os/os_linux.h"

namespace guardarena::stack {

constinit __attribute__((tls_model("initial-exec"),
                         visibility("hidden"))) thread_local std::uintptr_t t_allocator_entry = 0;

namespace {

// A block holds the thread's memo (28 KiB) and its stack cache in the rest
// (some 128 sets). Only the pages a thread uses become resident.
constexpr std::size_t kBlockBytes = 64 * 1024;
constexpr std::size_t kWays = 2;
// The memo: sets of two ways, picked by a hash of the key. Real programs
// allocate from hundreds of call sites in turn (a compiler, an interpreter),
// so a handful of entries would answer few of their captures.
constexpr std::size_t kMemoSets = 32;
constexpr std::size_t kMemoWays = 2;

struct CacheEntry {
  std::uint64_t hash;
  std::uint32_t id;  // 0: empty
  std::uint32_t n;
  std::uintptr_t frames[kCachedDepth];
};

struct CacheSet {
  CacheEntry ways[kWays];  // ways[0] is the most recently inserted
};

// A recent walk from a given call site, and the id its frames got: a capture
// whose walk would read the same records has the same frames, so it skips
// the walk, the hash and the set lookup.
struct Memo {
  std::uint32_t id;
  WalkTrail trail;
};

// A walk's depth, skip and trim count in one word (each below 2^16; larger
// values are never memoized).
constexpr std::uint64_t kMaxMemoParam = 0xffff;
constexpr std::uint64_t memo_params(std::size_t max_depth, std::size_t skip,
                                    std::size_t max_trim) noexcept {
  return (std::uint64_t{max_depth} << 32) | (std::uint64_t{skip} << 16) | max_trim;
}
constexpr bool memoizable(std::size_t max_depth, std::size_t skip, std::size_t max_trim) noexcept {
  return max_depth - 1 < kCachedDepth && skip <= kMaxMemoParam && max_trim <= kMaxMemoParam;
}

// A thread's memos. They all ran with the same parameters (a process
// captures with one configuration, so a change clears them), and each is
// named by the frame its walk started at and the first return address it
// read. That key picks one set: a lookup compares two words per way and reads
// the trails of the ways that match (usually one). A way whose key.start is 0
// is empty; otherwise its trail and id are complete.
struct MemoTable {
  struct Key {
    std::uintptr_t start;
    std::uintptr_t first_return;
  };
  struct Set {
    Key keys[kMemoWays];
    std::uint32_t next;  // the way replaced next (round robin)
    Memo ways[kMemoWays];
  };
  std::uint64_t params;  // memo_params() of every entry's walk; 0: none yet
  CodeRange trim;
  // configure_capture()'s stamp of a configuration whose walks the entries
  // are (its depth, trim and depot generation), so that capture_configured()
  // checks one word, not four; 0: none known.
  std::uint64_t stamp;
  std::uint64_t walks;  // memoizable captures it could not answer (counted off the hit path)
  Set sets[kMemoSets];

  void clear() noexcept {
    stamp = 0;
    for (Set& set : sets) {
      for (Key& k : set.keys) k.start = 0;
    }
  }
  // One multiply mixes the frame address and the return address into the
  // high bits, which pick the set.
  [[gnu::always_inline]] static std::size_t set_of(std::uintptr_t start,
                                                   std::uintptr_t first_return) noexcept {
    static_assert((kMemoSets & (kMemoSets - 1)) == 0);
    constexpr int kShift = 64 - std::countr_zero(kMemoSets);
    return static_cast<std::size_t>(((start ^ first_return) * 0x9e3779b97f4a7c15ULL) >> kShift);
  }
  // By value, so no local of the uninstrumented capture_cached() has its
  // address taken (see memo_answer()).
  [[gnu::always_inline]] static bool has_key(const Key& k, std::uintptr_t start,
                                             std::uintptr_t first_return) noexcept {
    return k.start == start && k.first_return == first_return;
  }
};

constexpr std::size_t kHeaderBytes = 32;
constexpr std::size_t kTailBytes = 8;  // thread_self
constexpr std::size_t kSets =
    (kBlockBytes - kHeaderBytes - sizeof(MemoTable) - kTailBytes) / sizeof(CacheSet);

struct Block {
  std::uint64_t depot_generation;   // the depot the ids below belong to
  std::atomic<std::uint32_t> next;  // free list: index + 1 of the next block
  std::atomic<bool> busy;           // inside store_cached() on this thread
  std::uint64_t hits;
  std::uint64_t misses;
  CacheSet sets[kSets];
  MemoTable memo;
  std::uintptr_t thread_self;  // pthread_self() of the thread holding the block
};
static_assert(offsetof(Block, sets) == kHeaderBytes);
static_assert(sizeof(Block) <= kBlockBytes);
static_assert(std::is_trivially_destructible_v<Block>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// Values of t_block that are not blocks.
constexpr std::uintptr_t kNone = 0;       // no block yet
constexpr std::uintptr_t kAcquiring = 1;  // taking one now (a signal handler must not)
constexpr std::uintptr_t kNoBlock = 2;    // none to be had, or given back at exit

// One pointer of initial-exec TLS: constant-initialised and trivially
// destructible, so glibc never allocates for it, even when dlopen'ed.
__attribute__((tls_model("initial-exec"))) thread_local std::uintptr_t t_block = kNone;

enum : int { kUninit, kInitializing, kReady, kFailed };
std::atomic<int> g_state{kUninit};
unsigned char* g_blocks = nullptr;  // kMaxCachedThreads blocks, written before kReady

// Blocks sit kBlockBytes apart, page-aligned, whatever sizeof(Block) is: two
// threads' blocks never share a cache line (each capture writes its own).
Block* block_at(std::uint32_t index) noexcept {
  return reinterpret_cast<Block*>(g_blocks + std::size_t{index} * kBlockBytes);
}
std::uint32_t index_of(const Block* b) noexcept {
  return static_cast<std::uint32_t>((reinterpret_cast<const unsigned char*>(b) - g_blocks) /
                                    kBlockBytes);
}
std::atomic<std::uint32_t> g_bump{0};  // blocks never handed out start here
std::atomic<std::uint64_t> g_free{0};  // (tag << 32) | (index + 1); the tag defeats ABA
std::atomic<std::size_t> g_in_use{0};
pthread_key_t g_exit_key;

// glibc keeps the values of keys below 32 inside struct pthread; for higher
// keys pthread_setspecific may calloc, which must not happen inside malloc.
constexpr unsigned kInlineKeys = 32;

std::uint64_t next_head(std::uint64_t head, std::uint32_t link) noexcept {
  return (((head >> 32) + 1) << 32) | link;
}

Block* pop_free() noexcept {
  std::uint64_t head = g_free.load(std::memory_order_acquire);
  while (static_cast<std::uint32_t>(head) != 0) {
    Block* b = block_at(static_cast<std::uint32_t>(head) - 1);
    // `b` may be popped and pushed again by others meanwhile; then the tag
    // has moved and the CAS below fails, so a stale `next` is never installed.
    const std::uint32_t next = b->next.load(std::memory_order_relaxed);
    if (g_free.compare_exchange_weak(head, next_head(head, next), std::memory_order_acquire,
                                     std::memory_order_acquire)) {
      return b;
    }
  }
  return nullptr;
}

void push_free(Block* b) noexcept {
  const std::uint32_t link = index_of(b) + 1;
  std::uint64_t head = g_free.load(std::memory_order_relaxed);
  do {
    b->next.store(static_cast<std::uint32_t>(head), std::memory_order_relaxed);
    // Release: the next owner must see this thread's last writes to the block.
  } while (!g_free.compare_exchange_weak(head, next_head(head, link), std::memory_order_release,
                                         std::memory_order_relaxed));
}

// Thread exit (pthread key destructor). Destructors that run later and free
// memory find kNoBlock and use the depot, rather than taking a block that no
// destructor would give back.
void give_back(void* p) noexcept {
  t_block = kNoBlock;
  push_free(static_cast<Block*>(p));
  g_in_use.fetch_sub(1, std::memory_order_relaxed);
}

Block* acquire_block() noexcept {
  t_block = kAcquiring;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  Block* b = pop_free();
  if (b == nullptr && g_bump.load(std::memory_order_relaxed) < kMaxCachedThreads) {
    const std::uint32_t index = g_bump.fetch_add(1, std::memory_order_relaxed);
    if (index < kMaxCachedThreads) b = block_at(index);
  }
  if (b == nullptr || pthread_setspecific(g_exit_key, b) != 0) {
    if (b != nullptr) push_free(b);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_block = kNoBlock;
    return nullptr;
  }
  g_in_use.fetch_add(1, std::memory_order_relaxed);
  // A memo is only valid on the stack of the thread that recorded it (its
  // start frame stands for that stack and its top).
  b->memo.clear();
  b->thread_self = reinterpret_cast<std::uintptr_t>(pthread_self());
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_block = reinterpret_cast<std::uintptr_t>(b);
  return b;
}

Block* current_block() noexcept {
  const std::uintptr_t t = t_block;
  // NOLINTNEXTLINE(performance-no-int-to-ptr): t_block holds a pointer or a state.
  if (t > kNoBlock) return reinterpret_cast<Block*>(t);
  if (t != kNone || g_state.load(std::memory_order_acquire) != kReady) return nullptr;
  return acquire_block();
}

// `pcs` was just written one word at a time by the walk, and those stores may
// still sit in the store buffer: a vector load spanning two of them cannot be
// forwarded and waits for them to reach the cache (memcmp, or the loop below
// vectorised, stalled there for most of a capture's cost). Word loads forward.
bool same_frames(const std::uintptr_t* cached, const std::uintptr_t* pcs, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (cached[i] != pcs[i]) return false;
  }
  return true;
}

}  // namespace

bool init_thread_stack_caches() noexcept {
  int state = g_state.load(std::memory_order_acquire);
  if (state == kUninit &&
      g_state.compare_exchange_strong(state, kInitializing, std::memory_order_acquire)) {
    void* span = os::map_internal(kMaxCachedThreads * kBlockBytes, "stack_cache");
    bool ok = span != nullptr;
    if (ok && pthread_key_create(&g_exit_key, give_back) != 0) ok = false;
    if (ok && static_cast<unsigned>(g_exit_key) >= kInlineKeys) {
      pthread_key_delete(g_exit_key);
      ok = false;
    }
    if (!ok && span != nullptr) os::release(span, kMaxCachedThreads * kBlockBytes);
    if (ok) g_blocks = static_cast<unsigned char*>(span);
    g_state.store(ok ? kReady : kFailed, std::memory_order_release);
    return ok;
  }
  return g_state.load(std::memory_order_acquire) == kReady;
}

namespace {

// Forgets the ids of a released or replaced depot.
void match_generation(Block* b, const StackDepot& depot) noexcept {
  const std::uint64_t generation = depot.generation();
  if (b->depot_generation == generation) return;
  for (CacheSet& s : b->sets) {
    for (CacheEntry& e : s.ways) e.id = 0;
  }
  b->memo.clear();
  b->depot_generation = generation;
}

// The cache lookup of store_cached(), for a block the caller marked busy.
std::uint32_t lookup_or_store(Block* b, StackDepot& depot, const std::uintptr_t* pcs, std::size_t n,
                              std::uint64_t hash) noexcept {
  // The depot's buckets use the low bits; the high bits pick the set.
  CacheSet& set = b->sets[((hash >> 32) * kSets) >> 32];
  for (const CacheEntry& e : set.ways) {
    if (e.id != 0 && e.hash == hash && e.n == n && same_frames(e.frames, pcs, n)) {
      ++b->hits;
      return e.id;
    }
  }
  ++b->misses;
  const std::uint32_t id = depot.store(pcs, n, hash);
  if (id != 0) {
    set.ways[1] = set.ways[0];
    CacheEntry& e = set.ways[0];
    e.hash = hash;
    e.id = id;
    e.n = static_cast<std::uint32_t>(n);
    std::memcpy(e.frames, pcs, n * sizeof(std::uintptr_t));
  }
  return id;
}

// Marks the calling thread's block busy, or returns null when there is none
// or a capture on this thread is already inside it (a signal handler).
Block* enter_block() noexcept {
  Block* b = current_block();
  if (b == nullptr || b->busy.load(std::memory_order_relaxed)) return nullptr;
  b->busy.store(true, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return b;
}

void leave_block(Block* b) noexcept {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  b->busy.store(false, std::memory_order_relaxed);
}

}  // namespace

std::uint32_t store_cached(StackDepot& depot, const std::uintptr_t* pcs, std::size_t n,
                           std::uint64_t hash) noexcept {
  if (n == 0 || n > kCachedDepth) return depot.store(pcs, n, hash);
  Block* b = enter_block();
  if (b == nullptr) return depot.store(pcs, n, hash);
  match_generation(b, depot);
  const std::uint32_t id = lookup_or_store(b, depot, pcs, n, hash);
  leave_block(b);
  return id;
}

namespace {

// Rare: way `w` of `set` has this key but its walk went a different way
// further out; the answer of a later way with the same key, or 0. Out of
// line, so that the common path saves fewer registers.
[[gnu::noinline]] __attribute__((no_sanitize("address"))) std::uint32_t later_answer(
    const MemoTable::Set& set, std::size_t w, std::uintptr_t fp,
    std::uintptr_t first_return) noexcept {
  for (++w; w < kMemoWays; ++w) {
    if (MemoTable::has_key(set.keys[w], fp, first_return) && set.ways[w].trail.still_holds())
      return set.ways[w].id;
  }
  return 0;
}

// The memo's answer for a walk from `fp` (a live frame of this thread, at or
// above the caller's) with these parameters, or 0: on as few instructions as
// possible, this runs twice per malloc/free pair. A memo belongs to this
// thread's block and starts at `fp`, so its stack top is this thread's for
// that frame: no need to compute it again. Not instrumented, like
// capture_cached() and capture_configured(), which it is inlined into:
// ASan's scope markers for the locals of an instrumented body would poison
// that frame's stack and nothing there unpoisons it.
[[gnu::always_inline]] __attribute__((no_sanitize("address"))) inline std::uint32_t memo_lookup(
    const MemoTable& memo, std::uintptr_t fp) noexcept {
  // NOLINTNEXTLINE(performance-no-int-to-ptr): a live frame record of this thread.
  const std::uintptr_t first_return = reinterpret_cast<const std::uintptr_t*>(fp)[1];
  const MemoTable::Set& set = memo.sets[MemoTable::set_of(fp, first_return)];
  static_assert(kMemoWays == 2);
  const std::size_t w = MemoTable::has_key(set.keys[0], fp, first_return)   ? 0
                        : MemoTable::has_key(set.keys[1], fp, first_return) ? 1
                                                                            : kMemoWays;
  if (w == kMemoWays) return 0;
  const Memo* m = &set.ways[w];
  // An opaque copy: GCC would otherwise recompute the entry's address from
  // the set and way indices at each use.
  asm("" : "+r"(m));
  return m->trail.still_holds() ? m->id : later_answer(set, w, fp, first_return);
}

// memo_lookup() in this thread's block, when `valid` says the memo holds
// walks that answer for the caller, else 0. The block is marked busy
// meanwhile (a signal handler's capture must not rewrite it under us).
template <class Valid>
[[gnu::always_inline]] __attribute__((no_sanitize("address"))) inline std::uint32_t memo_answer_if(
    std::uintptr_t fp, Valid valid) noexcept {
  const std::uintptr_t t = t_block;
  if (t <= kNoBlock) return 0;
  // NOLINTNEXTLINE(performance-no-int-to-ptr): t_block holds a pointer or a state.
  Block* b = reinterpret_cast<Block*>(t);
  if (b->busy.load(std::memory_order_relaxed)) return 0;
  b->busy.store(true, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  const std::uint32_t id = valid(*b) ? memo_lookup(b->memo, fp) : 0;
  leave_block(b);
  return id;
}

[[gnu::always_inline]] __attribute__((no_sanitize("address"))) inline std::uint32_t memo_answer(
    const StackDepot& depot, std::uintptr_t fp, std::uint64_t params, CodeRange trim) noexcept {
  return memo_answer_if(fp, [&](const Block& b) {
    return b.depot_generation == depot.generation() && b.memo.params == params &&
           b.memo.trim.lo == trim.lo && b.memo.trim.hi == trim.hi;
  });
}

// capture_cached() past its memo: walks from `fp` (capture_cached()'s frame
// or the entry frame above it, live while this runs), answers from the cache
// or the depot, and records the walk in the memo.
// `stamp`: configure_capture()'s, when these are the configured parameters
// (else 0).
[[gnu::noinline]] std::uint32_t capture_walk(StackDepot& depot, std::uintptr_t fp,
                                             std::size_t max_depth, std::size_t skip,
                                             CodeRange trim, std::size_t max_trim,
                                             std::uint64_t stamp = 0) noexcept {
  std::uintptr_t pcs[kMaxCapture];
  if (max_depth > kMaxCapture) max_depth = kMaxCapture;
  Block* b = memoizable(max_depth, skip, max_trim) ? enter_block() : nullptr;
  const std::uintptr_t top = b != nullptr ? stack_top_of(fp, b->thread_self) : stack_top_of(fp);
  // Only a walk bounded by a known stack top may be replayed: its records
  // all lie between its start frame and that top, in this thread's stack.
  if (b != nullptr && top == UINTPTR_MAX) {
    leave_block(b);
    b = nullptr;
  }
  if (b == nullptr) {
    std::uint64_t hash = 0;
    const std::size_t n =
        walk_trimmed(fp, top, pcs, max_depth, skip, trim, max_trim, &hash, nullptr);
    return store_cached(depot, pcs, n, hash);
  }
  match_generation(b, depot);
  MemoTable& t = b->memo;
  ++t.walks;
  const std::uint64_t params = memo_params(max_depth, skip, max_trim);
  if (t.params != params || t.trim.lo != trim.lo || t.trim.hi != trim.hi) {
    t.clear();
    t.params = params;
    t.trim = trim;
  }
  if (stamp != 0) t.stamp = stamp;
  // The key's set; in it, round robin, even over a way with the same key:
  // that one missed for this walk but may hold for the next (a function that
  // allocates, called from two places at the same depth, alternately).
  // NOLINTNEXTLINE(performance-no-int-to-ptr): `fp` is a live frame record of this thread.
  const std::uintptr_t first_return = reinterpret_cast<const std::uintptr_t*>(fp)[1];
  MemoTable::Set& set = t.sets[MemoTable::set_of(fp, first_return)];
  const std::uint32_t way = set.next;
  set.next = (way + 1) % kMemoWays;
  set.keys[way].start = 0;  // the trail below is being rewritten
  Memo& m = set.ways[way];
  std::uint64_t hash = 0;
  const std::size_t n =
      walk_trimmed(fp, top, pcs, max_depth, skip, trim, max_trim, &hash, &m.trail);
  const std::uint32_t id = n == 0 ? 0 : lookup_or_store(b, depot, pcs, n, hash);
  // The walk's first record is the one at `fp`, whose return address chose
  // the set.
  if (id != 0 && m.trail.steps != 0 && m.trail.step[0].return_address == first_return) {
    m.id = id;
    set.keys[way] = {fp, first_return};
  }
  leave_block(b);
  return id;
}

}  // namespace

// Not instrumented by ASan, like WalkTrail::still_holds() inlined here.
[[gnu::noinline]] __attribute__((no_sanitize("address"))) std::uint32_t capture_cached(
    StackDepot& depot, std::size_t max_depth, std::size_t skip, CodeRange trim,
    std::size_t max_trim) noexcept {
  auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  // From the entry frame when one is marked (a live frame of this thread,
  // above this one): the frames between are the allocator's.
  if (const std::uintptr_t entry = t_allocator_entry; entry > fp) {
    fp = entry;
    skip = 0;
  }
  if (memoizable(max_depth, skip, max_trim)) {
    if (const std::uint32_t id =
            memo_answer(depot, fp, memo_params(max_depth, skip, max_trim), trim);
        id != 0)
      return id;
  }
  const std::uint32_t id = capture_walk(depot, fp, max_depth, skip, trim, max_trim);
  asm volatile("" ::: "memory");  // no tail call: capture_walk reads this frame
  return id;
}

__attribute__((no_sanitize("address"))) std::uint32_t capture_memoized(
    const StackDepot& depot, std::size_t max_depth, CodeRange trim, std::size_t max_trim) noexcept {
  const std::uintptr_t entry = t_allocator_entry;
  if (entry <= reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) ||
      !memoizable(max_depth, 0, max_trim))
    return 0;
  return memo_answer(depot, entry, memo_params(max_depth, 0, max_trim), trim);
}

namespace {

// configure_capture()'s values. g_capture_stamp, a number no earlier
// configuration had, is stored last (release) and loaded first (acquire),
// so a capture that sees it sees the rest of that configuration; 0 = not
// memoizable (or not configured yet).
std::atomic<StackDepot*> g_capture_depot{nullptr};
std::atomic<std::size_t> g_capture_depth{0};
std::atomic<std::size_t> g_capture_max_trim{0};
std::atomic<std::uintptr_t> g_capture_lo{0}, g_capture_hi{0};
std::atomic<std::uint64_t> g_capture_stamp{0};
std::atomic<std::uint64_t> g_next_stamp{1};

}  // namespace

namespace {

// StackDepot::reset_hook: the configured depot's generation is part of the
// configuration's stamp, which the memo's hit path checks alone. A reset of
// that depot turns the configured memo off until the next configuration.
void forget_configured_depot(const StackDepot& depot) noexcept {
  if (g_capture_depot.load(std::memory_order_relaxed) == &depot)
    g_capture_stamp.store(0, std::memory_order_release);
}

}  // namespace

void configure_capture(StackDepot& depot, std::size_t max_depth, CodeRange trim,
                       std::size_t max_trim) noexcept {
  StackDepot::reset_hook.store(forget_configured_depot, std::memory_order_release);
  g_capture_depot.store(&depot, std::memory_order_relaxed);
  g_capture_depth.store(max_depth, std::memory_order_relaxed);
  g_capture_max_trim.store(max_trim, std::memory_order_relaxed);
  g_capture_lo.store(trim.lo, std::memory_order_relaxed);
  g_capture_hi.store(trim.hi, std::memory_order_relaxed);
  g_capture_stamp.store(
      memoizable(max_depth, 0, max_trim) ? g_next_stamp.fetch_add(1, std::memory_order_relaxed) : 0,
      std::memory_order_release);
}

namespace {

// capture_configured() when the memo has no answer for a walk from the entry
// frame: straight to the walk, as capture_cached() would after asking the
// memo the same question again. Out of line, so the memo's hit path saves no
// registers for it. The walk starts at the entry frame, which outlives it.
// `stamp` was loaded (acquire) before the values, which are therefore its
// configuration's or a later one's: memos are stamped with it, and a later
// stamp no longer matches them.
[[gnu::noinline]] std::uint32_t walk_from_entry(std::uintptr_t entry,
                                                std::uint64_t stamp) noexcept {
  StackDepot* depot = g_capture_depot.load(std::memory_order_relaxed);
  if (depot == nullptr) return 0;
  return capture_walk(*depot, entry, g_capture_depth.load(std::memory_order_relaxed), 0,
                      CodeRange{g_capture_lo.load(std::memory_order_relaxed),
                                g_capture_hi.load(std::memory_order_relaxed)},
                      g_capture_max_trim.load(std::memory_order_relaxed), stamp);
}

}  // namespace

// Not instrumented by ASan, like capture_cached().
[[gnu::noinline]] __attribute__((no_sanitize("address"))) std::uint32_t capture_configured(
    std::size_t skip) noexcept {
  const std::uint64_t stamp = g_capture_stamp.load(std::memory_order_acquire);
  const std::uintptr_t entry = t_allocator_entry;
  if (stamp != 0 && entry > reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0))) {
    // One word says the memo holds walks of this configuration (depth,
    // trim, depot generation): see MemoTable::stamp.
    if (const std::uint32_t id =
            memo_answer_if(entry, [stamp](const Block& b) { return b.memo.stamp == stamp; });
        id != 0)
      return id;
    return walk_from_entry(entry, stamp);
  }
  // Loaded again rather than kept in saved registers across the memo: its
  // hit is the common case and pays for every saved register.
  asm volatile("" ::: "memory");
  StackDepot* depot = g_capture_depot.load(std::memory_order_acquire);
  if (depot == nullptr) return 0;
  const std::uint32_t id =
      capture_cached(*depot, g_capture_depth.load(std::memory_order_relaxed), skip,
                     CodeRange{g_capture_lo.load(std::memory_order_relaxed),
                               g_capture_hi.load(std::memory_order_relaxed)},
                     g_capture_max_trim.load(std::memory_order_relaxed));
  asm volatile("" ::: "memory");  // no tail call: `skip` counts this frame
  return id;
}

ThreadStackCacheStats thread_stack_cache_stats_for_testing() noexcept {
  ThreadStackCacheStats s;
  const std::uintptr_t t = t_block;
  if (t <= kNoBlock) return s;
  // NOLINTNEXTLINE(performance-no-int-to-ptr): t_block holds a pointer or a state.
  const auto* b = reinterpret_cast<const Block*>(t);
  s.hits = b->hits;
  s.misses = b->misses;
  s.memo_walks = b->memo.walks;
  s.block = t;
  s.has_block = true;
  return s;
}

std::size_t thread_stack_caches_in_use_for_testing() noexcept {
  return g_in_use.load(std::memory_order_relaxed);
}

}  // namespace guardarena::stack
