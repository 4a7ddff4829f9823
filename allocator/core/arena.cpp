// The arena implementation, templated over the guard backend. Design
// reasoning (chunk layout, quarantine, VMA budget) is in docs/design.md; the
// comments here say why where the code cannot.
#include "core/arena.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>

#include "core/hooks.h"
#include "core/metadata.h"
#include "core/slot.h"
#include "core/thread_cache.h"
#include "os/check.h"
#include "os/guard_backend.h"
#include "os/os_linux.h"
#include "os/raw_writer.h"

namespace guardarena {
namespace {

constexpr unsigned char kCanaryByte = 0xca;
constexpr unsigned char kPoisonByte = 0xfd;
// Fast mode checks only this much leading slack: the rest of the page is
// rewritten on every reuse and the cost must stay near glibc's.
constexpr std::size_t kFastLeadCanary = 64;
// Fast mode poisons blocks up to this size on free; bigger ones are closed
// like full mode (their syscall is cheap next to touching that much memory).
constexpr std::size_t kFastPoisonLimit = 64 * 1024;
// Alignments fast mode's shortest path places (malloc's and new's default).
constexpr std::size_t kFastPathAlign = 16;
// Fast mode: resident bytes a class keeps on its free list before freed
// slots' pages go back to the kernel.
constexpr std::uint64_t kFastResidentPerClass = 8u << 20;
constexpr std::size_t kChunkPages = 16384;  // 64 MiB chunks with 4 KiB pages
constexpr std::size_t kMaxClasses = 32;
constexpr std::size_t kMaxArenas = 256;
// Full mode: one-page slots opened per batch (see take_ready_slot).
constexpr std::size_t kReadyBatch = os::kMaxBatch;

std::atomic<Arena*> g_arenas[kMaxArenas];

// Process-wide count of open guarded regions on the mprotect backend, against
// a limit derived from vm.max_map_count once: every arena shares one budget.
std::atomic<std::int64_t> g_open_regions{0};
std::atomic<std::int64_t> g_region_limit{-1};
std::atomic<bool> g_warned_fallback{false};

__attribute__((tls_model("initial-exec"))) thread_local std::uint32_t t_tid = 0;
__attribute__((tls_model("initial-exec"))) thread_local ThreadCache t_cache;
std::atomic<std::uint64_t> g_next_epoch{1};

// Thread exit gives a thread's cached slots back. Keys below 32 live inside
// glibc's struct pthread, so pthread_setspecific never allocates for ours.
pthread_key_t g_cache_key;
pthread_once_t g_cache_key_once = PTHREAD_ONCE_INIT;

// The class locks: held for a thread-cache refill or a quarantine batch (a
// few hundred ns), so a waiter that spins briefly gets the lock without a
// futex sleep and a context switch (std::mutex sleeps at once: two threads
// churning one class in fast mode spent their time in futex wake-ups).
// glibc's adaptive mutex spins a bounded number of times, then sleeps.
class ClassLock {
 public:
  ClassLock() noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~ClassLock() { pthread_mutex_destroy(&mu_); }
  ClassLock(const ClassLock&) = delete;
  ClassLock& operator=(const ClassLock&) = delete;
  void lock() noexcept { pthread_mutex_lock(&mu_); }
  void unlock() noexcept { pthread_mutex_unlock(&mu_); }

 private:
  pthread_mutex_t mu_;
};

// A thread gives its cache back to the cache's arena when it switches arenas
// or exits, if that arena is still registered at the cache's epoch. Check and
// hand-back run under the read side of this lock; unregister_arena()
// (destruction) and lock_all() (release(), fork) take the write side, so a
// cache is never absorbed into an arena while or after it is destroyed or
// reset. Without it, a worker switching away from a resource that another
// thread was destroying wrote into the freed arena (TSan, tests/stress).
// Order: this lock, then class locks.
//
// Not a pthread_rwlock_t: lock_all() takes the write side in a fork prepare
// handler and unlock_all() releases it in the child, whose thread has a new
// tid, and glibc's rwlock takes an unlock from a tid that is not the recorded
// writer for a reader's unlock. The lock then stayed write-locked in the
// child, and the child's next fork() hung (bash under the shim). This one
// records no owner: -1 = writer, n >= 0 = n readers.
class HandbackLock {
 public:
  void lock_shared() noexcept {
    for (;;) {
      int s = state_.load(std::memory_order_relaxed);
      if (s >= 0 && state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire)) return;
      sched_yield();
    }
  }
  void unlock_shared() noexcept { state_.fetch_sub(1, std::memory_order_release); }
  void lock() noexcept {
    for (;;) {
      int expected = 0;
      if (state_.compare_exchange_weak(expected, -1, std::memory_order_acquire)) return;
      sched_yield();
    }
  }
  void unlock() noexcept { state_.store(0, std::memory_order_release); }

 private:
  std::atomic<int> state_{0};
};
HandbackLock g_handback_lock;

void hand_back(ThreadCache& tc) noexcept {
  if (tc.owner == nullptr) return;
  g_handback_lock.lock_shared();
  if (Arena::is_current(tc.owner, tc.epoch)) tc.owner->absorb_thread_cache(tc);
  g_handback_lock.unlock_shared();
}

void flush_cache_at_thread_exit(void* p) {
  auto* tc = static_cast<ThreadCache*>(p);
  hand_back(*tc);
  tc->owner = nullptr;
}
void create_cache_key() {
  pthread_key_create(&g_cache_key, flush_cache_at_thread_exit);
}

std::int64_t region_limit(std::uint64_t headroom) noexcept {
  std::int64_t lim = g_region_limit.load(std::memory_order_acquire);
  if (lim >= 0) return lim;
  auto max = static_cast<std::int64_t>(os::max_map_count());
  auto now = static_cast<std::int64_t>(os::count_mappings());
  // An isolated read/write island splits its PROT_NONE surroundings: two
  // more mappings per open block.
  lim = std::max<std::int64_t>(0, (max - now - static_cast<std::int64_t>(headroom)) / 2);
  g_region_limit.store(lim, std::memory_order_release);
  return lim;
}

void warn_fallback_once(const char* why) noexcept {
  if (g_warned_fallback.exchange(true)) return;
  char buf[512];
  RawWriter w(buf, sizeof buf);
  w.str("guardarena: warning: ")
      .str(why)
      .str(
          "; serving further blocks unguarded from the system allocator (on_exhaustion=fallback). "
          "Raise vm.max_map_count, use backend=guard (Linux 6.13+), or sample_rate=N.\n");
  write_warning(w.data(), w.size());
}

// Filled pages to compare slack and poison against: glibc's vectorised
// memcmp checks a page of slack (full mode, at every free) several times
// faster than a word loop.
constexpr std::size_t kPatternBytes = 4096;
template <unsigned char Byte>
constexpr std::array<unsigned char, kPatternBytes> kFilled = [] {
  std::array<unsigned char, kPatternBytes> a{};
  for (auto& x : a) x = Byte;
  return a;
}();

const unsigned char* filled_with(unsigned char byte) noexcept {
  return byte == kCanaryByte ? kFilled<kCanaryByte>.data() : kFilled<kPoisonByte>.data();
}

// True when [p, p+n) holds only `byte`: the answer of nearly every check,
// found for n <= 64 (poison of small blocks, the lead canary) with a few
// overlapping 16-byte loads and no loop exit per word; the position of a bad
// byte is looked for only once one is known to be there.
using Bytes16 = unsigned char __attribute__((vector_size(16), aligned(1)));
[[gnu::always_inline]] inline Bytes16 load16(const unsigned char* p) noexcept {
  Bytes16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline bool all_zero(Bytes16 v) noexcept {
  std::uint64_t halves[2];
  std::memcpy(halves, &v, sizeof halves);
  return (halves[0] | halves[1]) == 0;
}
std::size_t first_mismatch(const unsigned char* p, std::size_t n, unsigned char byte) noexcept;
[[gnu::always_inline]] inline bool all_bytes_are(const unsigned char* p, std::size_t n,
                                                 unsigned char byte) noexcept {
  Bytes16 pattern = {};
  pattern += byte;
  if (n == kFastLeadCanary) {  // the lead canary, and 64-byte blocks: unrolled
    return all_zero((load16(p) ^ pattern) | (load16(p + 16) ^ pattern) |
                    (load16(p + 32) ^ pattern) | (load16(p + 48) ^ pattern));
  }
  if (n >= 16 && n <= 64) {
    Bytes16 diff = load16(p + n - 16) ^ pattern;
    for (std::size_t i = 0; i + 16 < n; i += 16) diff |= load16(p + i) ^ pattern;
    return all_zero(diff);
  }
  return first_mismatch(p, n, byte) == n;
}

// memset() for fast mode's 64-byte runs (every lead canary, and the poison
// of 64-byte blocks): four 16-byte stores instead of a call.
[[gnu::always_inline]] inline void fill_bytes(unsigned char* p, std::size_t n,
                                              unsigned char byte) noexcept {
  if (n == kFastLeadCanary) {
    Bytes16 pattern = {};
    pattern += byte;
    std::memcpy(p, &pattern, sizeof pattern);
    std::memcpy(p + 16, &pattern, sizeof pattern);
    std::memcpy(p + 32, &pattern, sizeof pattern);
    std::memcpy(p + 48, &pattern, sizeof pattern);
    return;
  }
  std::memset(p, byte, n);
}

// Index of the first byte in [p, p+n) that is not `byte` (kCanaryByte or
// kPoisonByte), or n.
std::size_t first_mismatch(const unsigned char* p, std::size_t n, unsigned char byte) noexcept {
  std::size_t i = 0;
  if (n > 64) {
    const unsigned char* filled = filled_with(byte);
    for (std::size_t k; i < n; i += k) {
      k = std::min(n - i, kPatternBytes);
      if (std::memcmp(p + i, filled, k) != 0) break;
    }
  }
  const std::uint64_t pattern = 0x0101010101010101ull * byte;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != pattern) break;
  }
  for (; i < n; ++i) {
    if (p[i] != byte) return i;
  }
  return n;
}

// One past the last byte in [p, p+n) that is not `byte`, or 0.
std::size_t last_mismatch_end(const unsigned char* p, std::size_t n, unsigned char byte) noexcept {
  std::size_t end = n;
  if (n > 64) {
    const unsigned char* filled = filled_with(byte);
    for (std::size_t k; end > 0; end -= k) {
      k = std::min(end, kPatternBytes);
      if (std::memcmp(p + end - k, filled, k) != 0) break;
    }
  }
  const std::uint64_t pattern = 0x0101010101010101ull * byte;
  for (; end >= 8; end -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p + end - 8, 8);
    if (w != pattern) break;
  }
  for (; end > 0; --end) {
    if (p[end - 1] != byte) return end;
  }
  return 0;
}

// Fast mode folds per-thread counter deltas late (see fold_stats): a global
// count read between a cross-thread free and the allocating thread's fold is
// transiently "negative". Report it as 0, not as 2^64 - n.
std::uint64_t not_negative(std::uint64_t v) noexcept {
  return static_cast<std::int64_t>(v) < 0 ? 0 : v;
}

void update_peak(std::atomic<std::uint64_t>& peak, std::uint64_t v) noexcept {
  std::uint64_t p = peak.load(std::memory_order_relaxed);
  while (v > p && !peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
  }
}

// kReleased: handed out before the last release(); inaccessible, and not
// reused until the rest of the reservation is used up, so a pointer kept
// across release() faults (use-after-release) instead of reaching new data.
enum class ChunkKind : std::uint8_t { kFree = 0, kClass, kLarge, kReleased };

struct ChunkInfo {
  std::atomic<ChunkKind> kind;
  std::uint8_t class_index;
  std::uint8_t prepared;
  std::uint32_t head;     // large: first chunk of the run
  std::uint32_t run_len;  // large: chunks in the run (on the head)
};

struct FreeRun {
  std::uint32_t start;
  std::uint32_t len;
};

// Open-addressing set of fallback pointers, so deallocate() can tell an
// unguarded block of ours from a foreign pointer. Only used after exhaustion.
class FallbackSet {
 public:
  bool init(std::size_t capacity) noexcept {
    cap_ = capacity;
    slots_ =
        static_cast<std::uintptr_t*>(os::map_internal(cap_ * sizeof(std::uintptr_t), "fallback"));
    return slots_ != nullptr;
  }
  void destroy() noexcept { os::release(slots_, cap_ * sizeof(std::uintptr_t)); }
  bool insert(std::uintptr_t p) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    if ((count_ + 1) * 4 > cap_ * 3 && !grow_locked()) return false;
    for (std::size_t i = hash(p);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == 0) {
        slots_[i] = p;
        ++count_;
        size_.store(count_, std::memory_order_relaxed);
        return true;
      }
    }
  }
  bool erase(std::uintptr_t p) noexcept {
    if (size_.load(std::memory_order_relaxed) == 0) return false;
    std::lock_guard<std::mutex> g(mu_);
    std::size_t i = hash(p);
    for (;; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == 0) return false;
      if (slots_[i] == p) break;
    }
    // Backward-shift deletion (Knuth's Algorithm R) instead of tombstones:
    // with tombstones every distinct address ever inserted used up an empty
    // slot for good, and after ~cap_ distinct fallback addresses a lookup of a
    // foreign pointer (owns_block, free of a glibc block) never found one and
    // spun forever. Each entry after the hole moves back into it unless its
    // home slot lies cyclically in (hole, its position].
    for (std::size_t j = i;;) {
      j = (j + 1) & (cap_ - 1);
      if (slots_[j] == 0) break;
      std::size_t home = hash(slots_[j]);
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = 0;
    --count_;
    size_.store(count_, std::memory_order_relaxed);
    return true;
  }
  bool contains(std::uintptr_t p) const noexcept {
    if (size_.load(std::memory_order_relaxed) == 0) return false;
    std::lock_guard<std::mutex> g(mu_);
    for (std::size_t i = hash(p);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == 0) return false;
      if (slots_[i] == p) return true;
    }
  }
  // Calls fn on every member and empties the set.
  template <class F>
  void drain(F fn) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    // An empty set is all zeros: skip the 8 MiB sweep, which every release()
    // and destruction paid (and kept resident) even when nothing fell back.
    if (count_ == 0) return;
    for (std::size_t i = 0; i < cap_; ++i) {
      if (slots_[i] != 0) fn(slots_[i]);
    }
    os::discard(slots_, cap_ * sizeof(std::uintptr_t));
    count_ = 0;
    size_.store(0, std::memory_order_relaxed);
  }
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  void lock() noexcept { mu_.lock(); }
  void unlock() noexcept { mu_.unlock(); }

 private:
  // Doubles the table (a program can fall back for millions of blocks once
  // the VMA budget is gone); false only when the kernel refuses the memory.
  bool grow_locked() noexcept {
    std::size_t new_cap = cap_ * 2;
    auto* fresh = static_cast<std::uintptr_t*>(
        os::map_internal(new_cap * sizeof(std::uintptr_t), "fallback"));
    if (fresh == nullptr) return false;
    std::uintptr_t* old = slots_;
    std::size_t old_cap = cap_;
    slots_ = fresh;
    cap_ = new_cap;
    for (std::size_t k = 0; k < old_cap; ++k) {
      if (old[k] == 0) continue;
      std::size_t i = hash(old[k]);
      while (slots_[i] != 0) i = (i + 1) & (cap_ - 1);
      slots_[i] = old[k];
    }
    os::release(old, old_cap * sizeof(std::uintptr_t));
    return true;
  }
  std::size_t hash(std::uintptr_t p) const noexcept {
    return static_cast<std::size_t>((p >> 4) * 0x9E3779B97F4A7C15ull >> 20) & (cap_ - 1);
  }
  mutable std::mutex mu_;
  std::uintptr_t* slots_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t count_ = 0;
  std::atomic<std::size_t> size_{0};
};

template <os::GuardBackend Backend>
class ArenaImpl final : public Arena {
 public:
  ArenaImpl(const Options& o, FallbackAllocator fb) noexcept : Arena(o), fallback_(fb) {
    epoch_.store(g_next_epoch.fetch_add(1), std::memory_order_relaxed);
  }

  bool init(ArenaError* error) noexcept {
    page_ = os::page_size();
    chunk_bytes_ = kChunkPages * page_;
    fast_small_ =
        options_.mode == Mode::kFast && !options_.protect_below && page_ <= kFastPoisonLimit;
    max_class_ = class_for_pages(kChunkPages / 4);
    GUARDARENA_CHECK(max_class_ < kMaxClasses && max_class_ < ThreadCache::kClasses,
                     "too many size classes");
    // Slot ids are chunk << slot_shift_ | index, so id -> chunk is a shift.
    slot_shift_ = static_cast<std::uint32_t>(
        std::bit_width(SlotGeometry{page_, 1}.slots_in(chunk_bytes_) - 1));
    max_slots_ = std::uint32_t{1} << slot_shift_;
    page_shift_ = static_cast<std::uint32_t>(std::countr_zero(page_));
    chunk_shift_ = static_cast<std::uint32_t>(std::countr_zero(chunk_bytes_));
    for (std::size_t c = 0; c <= max_class_; ++c) {
      // address -> slot index divides by the stride (usable + 1 pages), which
      // is rarely a power of two: multiply by a 32.32 reciprocal instead.
      // Exact for page offsets below 2^16 and strides below 2^15 (checked).
      stride_pages_[c] = static_cast<std::uint32_t>(class_pages(c) + 1);
      stride_magic_[c] = (std::uint64_t{1} << 32) / stride_pages_[c] + 1;
      slots_per_chunk_[c] =
          static_cast<std::uint32_t>(SlotGeometry{page_, class_pages(c)}.slots_in(chunk_bytes_));
    }
    static_assert(std::uint64_t{kChunkPages} * (kChunkPages / 4 + 1) < (std::uint64_t{1} << 32),
                  "the reciprocal division in slot_of() must stay exact");
    std::uint64_t want = std::max<std::uint64_t>(options_.reserve_size / chunk_bytes_, 2);
    // Halve until the kernel agrees (RLIMIT_AS, overcommit limits); two
    // chunks still serve small blocks of two classes and fall back beyond.
    void* base = nullptr;
    while (want >= 2) {
      if (want * max_slots_ < kNoSlot) {
        base = os::reserve(want * chunk_bytes_, chunk_bytes_, "guardarena:heap");
        if (base != nullptr) break;
      }
      want /= 2;
    }
    if (base == nullptr) {
      *error = ArenaError::kNoAddressSpace;
      return false;
    }
    num_chunks_ = static_cast<std::uint32_t>(want);
    base_ = reinterpret_cast<std::uintptr_t>(base);
    span_ = num_chunks_ * chunk_bytes_;
    meta_bytes_ = std::size_t{num_chunks_} * max_slots_ * sizeof(SlotMeta);
    meta_ = static_cast<SlotMeta*>(os::map_internal(meta_bytes_, "guardarena:meta"));
    chunk_table_bytes_ = num_chunks_ * (sizeof(ChunkInfo) + sizeof(FreeRun));
    void* tables = os::map_internal(chunk_table_bytes_, "guardarena:chunks");
    if (meta_ == nullptr || tables == nullptr || !fallback_set_.init(std::size_t{1} << 16)) {
      *error = ArenaError::kNoMetadata;
      return false;
    }
    chunks_ = static_cast<ChunkInfo*>(tables);
    free_runs_ = reinterpret_cast<FreeRun*>(chunks_ + num_chunks_);
    if constexpr (Backend::kCountsVmas) region_limit(options_.vma_headroom);
    return true;
  }

  ~ArenaImpl() override {
    unregister_arena(this);
    release_fallbacks();
    if constexpr (Backend::kCountsVmas) {
      g_open_regions.fetch_sub(open_regions_.load(), std::memory_order_relaxed);
    }
    os::release(reinterpret_cast<void*>(base_), span_);
    os::release(meta_, meta_bytes_);
    os::release(chunks_, chunk_table_bytes_);
    fallback_set_.destroy();
  }

  void* allocate(std::size_t size, std::size_t align, AllocKind kind, bool zero) noexcept override {
    bool lead_applied = false;
    if (fast_small_ && size - 1 < page_ && align <= kFastPathAlign) [[likely]] {
      if (void* p = allocate_small_fast(size, align, kind, zero, lead_applied)) return p;
    }
    // errno must survive a successful allocation. The short path's only
    // system calls (closing slots past the resident bound, on eviction) go
    // through os::, which keeps errno; this path also calls glibc (fallback
    // blocks), which may not.
    const int saved_errno = errno;
    void* p = allocate_general(size, align, kind, zero, lead_applied);
    if (p != nullptr) errno = saved_errno;
    return p;
  }

  // allocate() past the short path.
  void* allocate_general(std::size_t size, std::size_t align, AllocKind kind, bool zero,
                         bool lead_applied) noexcept {
    if (align < 1) align = 1;
    if (size > span_ || align > span_ / 4)
      return exhausted(size, align, zero, "request larger than the arena");
    std::size_t need = slot_bytes_needed(size, align, page_);
    std::size_t cls = class_for_pages(need >> page_shift_);
    std::uint32_t id = kNoSlot;
    std::uintptr_t slot_start = 0;
    std::size_t usable = 0;
    if (cls <= max_class_) {
      if (options_.mode == Mode::kFast) {
        id = take_cached_slot(cls, lead_applied);
      } else if (Backend::kBatchesOpen && cls == 0) {
        id = take_ready_slot(cls);
      } else {
        id = take_slot(cls);
      }
      if (id == kNoSlot)
        return exhausted(size, align, zero, "the arena's address space is exhausted");
      slot_start = slot_address(id, cls);
      usable = class_pages(cls) * page_;
    } else {
      cls = large_class();
      std::size_t run = (need + 2 * page_ + chunk_bytes_ - 1) / chunk_bytes_;
      std::uint32_t first = take_run(static_cast<std::uint32_t>(run), true);
      if (first == kNoSlot)
        return exhausted(size, align, zero, "the arena's address space is exhausted");
      id = first << slot_shift_;
      slot_start = base_ + std::uintptr_t{first} * chunk_bytes_ + page_;
      usable = run * chunk_bytes_ - 2 * page_;
    }
    SlotMeta& m = meta_[id];
    Placement pl = place_block(slot_start, usable, size, align, options_.protect_below, page_);
    // Open already: a fast-mode slot recycled with its pages, or a full-mode
    // slot opened ahead in a batch (take_ready_slot).
    bool reuse_open = m.open_end > m.open_begin;
    bool fast = options_.mode == Mode::kFast;
    if (reuse_open) {
      if (fast) check_poison(m, slot_start);
      // Widen the open range to what the new block needs; never shrink it
      // in fast mode (that would cost a syscall on every reuse).
      std::size_t ob = std::min<std::size_t>(pl.open_begin, m.open_begin);
      std::size_t oe = std::max<std::size_t>(pl.open_end, m.open_end);
      if (ob < m.open_begin &&
          !Backend::open(reinterpret_cast<void*>(slot_start + ob), m.open_begin - ob)) {
        return give_back_and_exhaust(id, cls, size, align, zero);
      }
      if (oe > m.open_end &&
          !Backend::open(reinterpret_cast<void*>(slot_start + m.open_end), oe - m.open_end)) {
        return give_back_and_exhaust(id, cls, size, align, zero);
      }
      pl.open_begin = ob;
      pl.open_end = oe;
    } else {
      if constexpr (Backend::kCountsVmas) {
        if (g_open_regions.fetch_add(1, std::memory_order_relaxed) >=
            region_limit(options_.vma_headroom)) {
          g_open_regions.fetch_sub(1, std::memory_order_relaxed);
          return give_back_and_exhaust(id, cls, size, align, zero,
                                       "the vm.max_map_count budget is used up");
        }
        open_regions_.fetch_add(1, std::memory_order_relaxed);
      }
      if (!Backend::open(reinterpret_cast<void*>(slot_start + pl.open_begin),
                         pl.open_end - pl.open_begin)) {
        if constexpr (Backend::kCountsVmas) {
          g_open_regions.fetch_sub(1, std::memory_order_relaxed);
          open_regions_.fetch_sub(1, std::memory_order_relaxed);
        }
        return give_back_and_exhaust(id, cls, size, align, zero);
      }
    }
    auto* p = reinterpret_cast<unsigned char*>(slot_start + pl.offset);
    std::size_t s = size == 0 ? 1 : size;
    // Full mode's open slots are fresh pages: already zero.
    if (zero && reuse_open && fast) std::memset(p, 0, s);
    write_canaries(slot_start, pl.open_begin, pl.offset, s, pl.open_end);
    m.alloc_kind = static_cast<std::uint8_t>(kind);
    m.align_log2 = static_cast<std::uint8_t>(std::countr_zero(align));
    m.protect_below = options_.protect_below ? 1 : 0;
    m.size = size;
    m.offset = pl.offset;
    m.block = reinterpret_cast<std::uintptr_t>(p);
    m.open_begin = pl.open_begin;
    m.open_end = pl.open_end;
    m.alloc_stack = capture_stack_id();
    m.free_stack = 0;
    m.alloc_tid = current_tid();
    m.free_tid = 0;
    m.state.store(SlotState::kLive, std::memory_order_release);
    if (options_.mode == Mode::kFast && cls != large_class()) {
      // Counted in the thread cache, folded in at the next refill or flush.
      ThreadCache& tc = t_cache;
      ++tc.live_blocks;
      tc.live_bytes += static_cast<std::int64_t>(size);
      ++tc.allocations;
      return p;
    }
    std::uint64_t lb = live_blocks_.fetch_add(1, std::memory_order_relaxed) + 1;
    std::uint64_t lby = live_bytes_.fetch_add(size, std::memory_order_relaxed) + size;
    update_peak(peak_blocks_, lb);
    update_peak(peak_bytes_, lby);
    guarded_total_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }

  FreeResult deallocate(void* ptr, std::size_t size, std::size_t align,
                        AllocKind kind) noexcept override {
    auto a = reinterpret_cast<std::uintptr_t>(ptr);
    if (fast_small_ && owns(ptr) && deallocate_small_fast(a, size, align, kind)) [[likely]]
      return FreeResult::kFreed;
    // As in allocate(): the general path also calls glibc.
    const int saved_errno = errno;
    const FreeResult r = deallocate_general(a, ptr, size, align, kind);
    errno = saved_errno;
    return r;
  }

  // deallocate() past the short path.
  FreeResult deallocate_general(std::uintptr_t a, void* ptr, std::size_t size, std::size_t align,
                                AllocKind kind) noexcept {
    if (!owns(ptr)) {
      if (fallback_set_.erase(a)) {
        fallback_.deallocate(ptr);
        fallback_live_.fetch_sub(1, std::memory_order_relaxed);
        return FreeResult::kFreed;
      }
      return FreeResult::kNotOurs;
    }
    std::size_t cls = 0;
    std::uint32_t id = slot_of(a, cls);
    if (id == kNoSlot) invalid_free(a, kind, nullptr);
    SlotMeta& m = meta_[id];
    // The block's address as allocate() recorded it: a load instead of the
    // slot arithmetic (meaningful while the slot is live, which the state
    // check below establishes before anything relies on it).
    std::uintptr_t block = m.block;
    std::uintptr_t slot_start = block - m.offset;
    SlotState expected = SlotState::kLive;
    if (a != block || !m.state.compare_exchange_strong(expected, SlotState::kQuarantined,
                                                       std::memory_order_acq_rel)) {
      report_failed_free(m, a, block, slot_start, kind);
    }
    // From here this thread owns the slot: no other free can pass the CAS.
    check_free_matches(m, a, slot_start, size, align, kind);
    check_canaries(m, slot_start);
    m.free_stack = capture_stack_id();
    m.free_tid = current_tid();
    bool large = cls == large_class();
    std::size_t s = m.size == 0 ? 1 : m.size;
    if (options_.mode == Mode::kFast && !large) {
      ThreadCache& tc = my_cache();
      --tc.live_blocks;
      tc.live_bytes -= static_cast<std::int64_t>(m.size);
      if (s <= kFastPoisonLimit) {
        fill_bytes(reinterpret_cast<unsigned char*>(block), s, kPoisonByte);
      } else {
        close_slot(m, slot_start);
      }
      quarantine_in_thread(tc, id, cls);
      return FreeResult::kFreed;
    }
    live_blocks_.fetch_sub(1, std::memory_order_relaxed);
    live_bytes_.fetch_sub(m.size, std::memory_order_relaxed);
    close_slot(m, slot_start);
    quarantine(id, cls);
    return FreeResult::kFreed;
  }

  bool owns_block(const void* p) const noexcept override {
    if (!owns(p)) return fallback_set_.contains(reinterpret_cast<std::uintptr_t>(p));
    BlockInfo b;
    return block_info(p, b);
  }

  std::size_t usable_size(const void* p) const noexcept override {
    BlockInfo b;
    return block_info(p, b) ? b.size : 0;
  }

  bool block_info(const void* p, BlockInfo& out) const noexcept override {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    if (!owns(p)) return false;
    std::size_t cls = 0;
    std::uint32_t id = slot_of(a, cls);
    if (id == kNoSlot) return false;
    const SlotMeta& m = meta_[id];
    std::uintptr_t slot_start = slot_address(id, cls);
    if (slot_start + m.offset != a || m.state.load(std::memory_order_acquire) != SlotState::kLive)
      return false;
    fill_block(out, m, slot_start);
    return true;
  }

  bool describe(std::uintptr_t addr, AddressInfo& out) const noexcept override {
    if (addr - base_ >= span_) return false;
    out = AddressInfo{};
    std::uint32_t chunk = static_cast<std::uint32_t>((addr - base_) >> chunk_shift_);
    const ChunkInfo& ci = chunks_[chunk];
    ChunkKind k = ci.kind.load(std::memory_order_acquire);
    if (k == ChunkKind::kFree) return true;  // wild access inside the heap
    if (k == ChunkKind::kReleased) {
      out.kind = ErrorKind::kUseAfterRelease;
      return true;
    }
    std::uint32_t candidates[3];
    std::size_t cls_of[3];
    std::size_t n = 0;
    if (k == ChunkKind::kLarge) {
      candidates[n] = ci.head << slot_shift_;
      cls_of[n++] = large_class();
    } else {
      std::size_t cls = ci.class_index;
      SlotGeometry g{page_, class_pages(cls)};
      std::uintptr_t chunk_base = base_ + std::uintptr_t{chunk} * chunk_bytes_;
      std::uintptr_t off = addr - chunk_base;
      std::size_t idx = off < page_ ? 0 : (off - page_) / g.stride();
      std::size_t slots = g.slots_in(chunk_bytes_);
      for (std::size_t j = idx == 0 ? 0 : idx - 1; j <= idx + 1 && j < slots; ++j) {
        candidates[n] = static_cast<std::uint32_t>((chunk << slot_shift_) | j);
        cls_of[n++] = cls;
      }
    }
    // Nearest block that is live or freed; inside a freed block wins.
    std::uint64_t best = UINT64_MAX;
    for (std::size_t i = 0; i < n; ++i) {
      const SlotMeta& m = meta_[candidates[i]];
      SlotState st = m.state.load(std::memory_order_acquire);
      if (st == SlotState::kUnused) continue;
      std::uintptr_t slot_start = slot_address(candidates[i], cls_of[i]);
      std::uintptr_t b = slot_start + m.offset;
      std::uint64_t s = m.size == 0 ? 1 : m.size;
      std::uint64_t dist = addr < b ? b - addr : (addr >= b + s ? addr - (b + s) + 1 : 0);
      bool freed = st != SlotState::kLive;
      // Prefer live blocks over old freed ones at equal distance.
      std::uint64_t score = dist * 2 + (freed && dist != 0 ? 1 : 0);
      if (score >= best) continue;
      best = score;
      out.has_block = true;
      out.block = b;
      out.size = m.size;
      out.align = std::uint64_t{1} << m.align_log2;
      out.distance = static_cast<std::int64_t>(addr - b);
      out.state = st;
      out.alloc_kind = m.alloc_kind;
      out.alloc_stack = m.alloc_stack;
      out.free_stack = m.free_stack;
      out.alloc_tid = m.alloc_tid;
      out.free_tid = m.free_tid;
      if (freed) {
        out.kind = ErrorKind::kHeapUseAfterFree;
      } else if (addr < b) {
        out.kind = ErrorKind::kHeapBufferUnderflow;
      } else {
        out.kind = ErrorKind::kHeapBufferOverflow;
      }
    }
    return true;
  }

  void release_all() noexcept override {
    release_fallbacks();
    lock_all();
    // One mmap(MAP_FIXED) over the whole span: every block becomes
    // inaccessible and every page goes back, whatever the backend.
    GUARDARENA_CHECK(os::replace_with_inaccessible(reinterpret_cast<void*>(base_), span_),
                     "release: cannot reset the reservation");
    os::discard(meta_, meta_bytes_);
    for (std::uint32_t c = 0; c < next_chunk_; ++c) {
      chunks_[c].kind.store(ChunkKind::kReleased, std::memory_order_release);
      chunks_[c].prepared = 0;  // the mmap above removed the guard markers too
      chunks_[c].head = 0;
      chunks_[c].run_len = 0;
    }
    released_end_ = next_chunk_;
    free_run_count_ = 0;
    for (std::size_t c = 0; c <= large_class(); ++c) classes_[c].reset();
    if constexpr (Backend::kCountsVmas) {
      g_open_regions.fetch_sub(open_regions_.exchange(0), std::memory_order_relaxed);
    }
    // Slot ids cached by any thread are meaningless now.
    epoch_.store(g_next_epoch.fetch_add(1), std::memory_order_release);
    live_blocks_ = 0;
    live_bytes_ = 0;
    q_blocks_ = 0;
    q_bytes_ = 0;
    active_caches_ = 0;  // every cache is stale now; each re-registers
    peak_blocks_ = 0;
    peak_bytes_ = 0;
    guarded_total_ = 0;
    fallback_total_ = 0;
    failed_total_ = 0;
    unlock_all();
  }

  void flush_quarantine() noexcept override {
    if (t_cache.owner == this && t_cache.epoch == epoch()) {
      while (t_cache.q_count > 0) evict_from_thread(t_cache);
      fold_stats(t_cache);
    }
    for (std::size_t c = 0; c <= large_class(); ++c) {
      ClassState& cs = classes_[c];
      std::lock_guard<ClassLock> g(cs.mu);
      while (cs.q_head != kNoSlot) evict_one(c, cs);
    }
  }

  void for_each_live(void (*fn)(const BlockInfo&, void*), void* ctx) const noexcept override {
    std::uint32_t used = next_chunk_;
    for (std::uint32_t c = 0; c < used; ++c) {
      ChunkKind k = chunks_[c].kind.load(std::memory_order_acquire);
      std::size_t slots = 0;
      std::size_t cls = 0;
      if (k == ChunkKind::kClass) {
        cls = chunks_[c].class_index;
        slots = SlotGeometry{page_, class_pages(cls)}.slots_in(chunk_bytes_);
      } else if (k == ChunkKind::kLarge && chunks_[c].head == c) {
        cls = large_class();
        slots = 1;
      }
      for (std::size_t i = 0; i < slots; ++i) {
        std::uint32_t id = static_cast<std::uint32_t>((c << slot_shift_) | i);
        const SlotMeta& m = meta_[id];
        if (m.state.load(std::memory_order_acquire) != SlotState::kLive) continue;
        BlockInfo b;
        fill_block(b, m, slot_address(id, cls));
        fn(b, ctx);
      }
    }
  }

  // Lock order everywhere: hand-back lock (write side here), class lock, then
  // chunk lock; the fallback set's lock is never held with the last two.
  void lock_all() noexcept override {
    g_handback_lock.lock();
    for (std::size_t c = 0; c <= large_class(); ++c) classes_[c].mu.lock();
    chunk_mu_.lock();
    fallback_set_.lock();
  }
  void unlock_all() noexcept override {
    fallback_set_.unlock();
    chunk_mu_.unlock();
    for (std::size_t c = large_class() + 1; c-- > 0;) classes_[c].mu.unlock();
    g_handback_lock.unlock();
  }

  ArenaStats stats() const noexcept override {
    // The calling thread's deltas are folded in; other threads' fast-mode
    // deltas arrive at their next refill, flush or exit.
    ThreadCache& tc = t_cache;
    if (tc.owner == this && tc.epoch == epoch()) const_cast<ArenaImpl*>(this)->fold_stats(tc);
    ArenaStats s;
    s.live_blocks = not_negative(live_blocks_.load(std::memory_order_relaxed));
    s.live_bytes = not_negative(live_bytes_.load(std::memory_order_relaxed));
    s.peak_live_blocks = peak_blocks_.load(std::memory_order_relaxed);
    s.peak_live_bytes = peak_bytes_.load(std::memory_order_relaxed);
    s.guarded_allocations = guarded_total_.load(std::memory_order_relaxed);
    s.fallback_allocations = fallback_total_.load(std::memory_order_relaxed);
    s.fallback_live = fallback_live_.load(std::memory_order_relaxed);
    s.failed_allocations = failed_total_.load(std::memory_order_relaxed);
    s.quarantined_blocks = q_blocks_.load(std::memory_order_relaxed);
    s.quarantined_bytes = q_bytes_.load(std::memory_order_relaxed);
    if constexpr (Backend::kCountsVmas)
      s.vmas_in_use = 2 * open_regions_.load(std::memory_order_relaxed);
    s.reserved_bytes = span_;
    s.syscalls = os::syscall_count();
    s.backend = Backend::kName;
    return s;
  }

 private:
  struct alignas(64) ClassState {
    ClassLock mu;
    std::uint32_t free_head = kNoSlot;  // slots back from quarantine
    std::uint32_t cur_chunk = kNoSlot;  // chunk being bump-allocated
    std::uint32_t next_index = 0;
    std::uint32_t slots_in_chunk = 0;
    std::uint32_t q_head = kNoSlot;  // quarantine FIFO, oldest first
    std::uint32_t q_tail = kNoSlot;
    std::uint64_t free_resident = 0;  // open bytes of slots on the free list
    std::uint32_t ready_count = 0;    // full mode: slots opened ahead
    std::uint32_t ready[kReadyBatch];
    void reset() noexcept {
      free_resident = 0;
      ready_count = 0;
      free_head = cur_chunk = q_head = q_tail = kNoSlot;
      next_index = slots_in_chunk = 0;
    }
  };

  std::size_t large_class() const noexcept { return max_class_ + 1; }

  // A free that did not pass the compare-exchange from kLive: a double free
  // when `a` is the recorded block of a freed slot, else an invalid free.
  [[noreturn, gnu::noinline]] void report_failed_free(const SlotMeta& m, std::uintptr_t a,
                                                      std::uintptr_t block,
                                                      std::uintptr_t slot_start,
                                                      AllocKind kind) noexcept {
    SlotState st = m.state.load(std::memory_order_acquire);
    if (a == block && (st == SlotState::kQuarantined || st == SlotState::kAvailable)) {
      report_block(ErrorKind::kDoubleFree, a, m, slot_start, kind);
    }
    invalid_free(a, kind, st == SlotState::kLive ? &m : nullptr, slot_start);
  }

  // The free must name the block as it was allocated: same family (malloc,
  // new, new[], ...), and the size and alignment the sized forms pass.
  void check_free_matches(const SlotMeta& m, std::uintptr_t a, std::uintptr_t slot_start,
                          std::size_t size, std::size_t align, AllocKind kind) noexcept {
    auto ak = static_cast<AllocKind>(m.alloc_kind);
    if (ak != kind && !(ak == AllocKind::kPmr || kind == AllocKind::kPmr)) [[unlikely]] {
      Finding r = make_finding(ErrorKind::kAllocDeallocMismatch, a, m, slot_start);
      r.dealloc_kind = static_cast<std::uint8_t>(kind);
      report_finding(r);
    }
    bool size_differs = size != 0 && size != m.size;
    bool align_differs =
        kind == AllocKind::kPmr && align != 0 && std::countr_zero(align) != m.align_log2;
    if (size_differs || align_differs) [[unlikely]] {
      Finding r = make_finding(ErrorKind::kSizeMismatch, a, m, slot_start);
      r.expected_size = size;
      r.expected_align = align;
      r.dealloc_kind = static_cast<std::uint8_t>(kind);
      report_finding(r);
    }
  }

  // Fast mode's common case, on as few instructions as the checks allow: a
  // block of at most one page (class 0), default alignment, reusing an open
  // slot from the thread's free list. nullptr = take the general path, which
  // handles everything else (fresh slots, refills, foreign caches) with the
  // same checks.
  [[gnu::always_inline]] void* allocate_small_fast(std::size_t size, std::size_t align,
                                                   AllocKind kind, bool zero,
                                                   bool& lead_applied) noexcept {
    ThreadCache& tc = t_cache;
    if (tc.owner != this || tc.epoch != epoch_.load(std::memory_order_relaxed)) [[unlikely]]
      return nullptr;
    // The lead rule of take_cached_slot(), first: in steady state the slot
    // taken is often the one it evicts. If this path then gives up, the
    // general one is told not to evict a second time.
    if (tc.free_count[0] < ThreadCache::kLead && tc.q_count > 0 &&
        tc.q_count + ThreadCache::kLead > tc.slot_bound) {
      evict_from_thread(tc);
      lead_applied = true;
    }
    if (tc.free_count[0] == 0) [[unlikely]]
      return nullptr;
    const std::uint32_t id = tc.free_head[0];
    SlotMeta& m = meta_[id];
    // A one-page slot is open as a whole or not at all (closed past the
    // resident bound, or never used).
    if (m.open_end != page_) [[unlikely]]
      return nullptr;
    tc.free_head[0] = m.next;
    --tc.free_count[0];
    // Open slots were allocated before, so the recorded block locates the
    // slot (and its poison) without the slot arithmetic.
    const std::uintptr_t slot_start = m.block - m.offset;
    check_poison(m, slot_start);
    const std::size_t offset = (page_ - size) & ~(align - 1);
    auto* p = reinterpret_cast<unsigned char*>(slot_start + offset);
    if (zero) std::memset(p, 0, size);
    write_canaries(slot_start, 0, offset, size, page_);
    m.alloc_kind = static_cast<std::uint8_t>(kind);
    m.align_log2 = static_cast<std::uint8_t>(std::countr_zero(align));
    m.size = size;
    m.offset = offset;
    m.block = reinterpret_cast<std::uintptr_t>(p);
    m.alloc_stack = capture_stack_id();
    m.free_stack = 0;
    m.alloc_tid = current_tid();
    m.free_tid = 0;
    m.state.store(SlotState::kLive, std::memory_order_release);
    ++tc.live_blocks;
    tc.live_bytes += static_cast<std::int64_t>(size);
    ++tc.allocations;
    return p;
  }

  // check_canaries()'s common answer for a class-0 block in fast mode
  // (open from the slot start to the page end, at most kFastLeadCanary bytes
  // of lead checked): true when both canaries are intact.
  [[gnu::always_inline]] bool small_canaries_intact(const SlotMeta& m,
                                                    std::uintptr_t slot_start) const noexcept {
    const std::size_t s = m.size == 0 ? 1 : m.size;
    const std::size_t lead = m.offset < kFastLeadCanary ? m.offset : kFastLeadCanary;
    const std::size_t tail = page_ - m.offset - s;
    auto* block = reinterpret_cast<const unsigned char*>(slot_start + m.offset);
    return (lead == 0 || all_bytes_are(block - lead, lead, kCanaryByte)) &&
           (tail == 0 || all_bytes_are(block + s, tail, kCanaryByte));
  }

  // The free of a class-0 block in fast mode: false = take the general path
  // (another class, a large block, not a block start, a cache to switch);
  // every error it can see is reported exactly as the general path would.
  [[gnu::always_inline]] bool deallocate_small_fast(std::uintptr_t a, std::size_t size,
                                                    std::size_t align, AllocKind kind) noexcept {
    const std::uintptr_t rel = a - base_;
    const ChunkInfo& ci = chunks_[rel >> chunk_shift_];
    // Class-0 slots take pages 1, 3, 5, ... of their chunk.
    const std::uintptr_t page_in_chunk = (rel & (chunk_bytes_ - 1)) >> page_shift_;
    const std::uintptr_t index = page_in_chunk >> 1;
    if (ci.kind.load(std::memory_order_acquire) != ChunkKind::kClass || ci.class_index != 0 ||
        (page_in_chunk & 1) == 0 || index >= slots_per_chunk_[0]) [[unlikely]]
      return false;
    ThreadCache& tc = t_cache;
    if (tc.owner != this || tc.epoch != epoch_.load(std::memory_order_relaxed)) [[unlikely]]
      return false;
    const auto id = static_cast<std::uint32_t>(((rel >> chunk_shift_) << slot_shift_) | index);
    SlotMeta& m = meta_[id];
    const std::uintptr_t block = m.block;
    SlotState expected = SlotState::kLive;
    if (a != block) [[unlikely]]
      return false;  // not a block start: the general path works out what it is
    const std::uintptr_t slot_start = block - m.offset;
    // Reported here, not by a second compare-exchange on the general path:
    // the slot could be reused in between, and that one would then succeed.
    if (!m.state.compare_exchange_strong(expected, SlotState::kQuarantined,
                                         std::memory_order_acq_rel)) [[unlikely]]
      report_failed_free(m, a, block, slot_start, kind);
    // The general checks only when a quick look finds something to report
    // (or a pmr free, whose alignment is checked too).
    if (m.alloc_kind != static_cast<std::uint8_t>(kind) || (size != 0 && size != m.size) ||
        kind == AllocKind::kPmr) [[unlikely]]
      check_free_matches(m, a, slot_start, size, align, kind);
    if (!small_canaries_intact(m, slot_start)) [[unlikely]]
      check_canaries(m, slot_start);
    m.free_stack = capture_stack_id();
    m.free_tid = current_tid();
    --tc.live_blocks;
    tc.live_bytes -= static_cast<std::int64_t>(m.size);
    fill_bytes(reinterpret_cast<unsigned char*>(block), m.size == 0 ? 1 : m.size, kPoisonByte);
    quarantine_in_thread(tc, id, 0);
    return true;
  }

  std::uintptr_t slot_address(std::uint32_t id, std::size_t cls) const noexcept {
    std::uint32_t chunk = id >> slot_shift_;
    std::uintptr_t chunk_base = base_ + std::uintptr_t{chunk} * chunk_bytes_;
    if (cls == large_class()) return chunk_base + page_;
    std::uintptr_t index = id & (max_slots_ - 1);
    return chunk_base + ((1 + index * stride_pages_[cls]) << page_shift_);
  }

  // Slot holding address `a` (inside its usable pages), or kNoSlot.
  std::uint32_t slot_of(std::uintptr_t a, std::size_t& cls) const noexcept {
    // A shift, not a division: this runs on every free.
    std::uint32_t chunk = static_cast<std::uint32_t>((a - base_) >> chunk_shift_);
    const ChunkInfo& ci = chunks_[chunk];
    ChunkKind k = ci.kind.load(std::memory_order_acquire);
    if (k == ChunkKind::kLarge) {
      cls = large_class();
      return ci.head << slot_shift_;
    }
    if (k != ChunkKind::kClass) return kNoSlot;
    cls = ci.class_index;
    std::uintptr_t off_pages = (a - (base_ + std::uintptr_t{chunk} * chunk_bytes_)) >> page_shift_;
    if (off_pages == 0) return kNoSlot;
    std::uint64_t idx = ((off_pages - 1) * stride_magic_[cls]) >> 32;
    std::uint64_t within = off_pages - 1 - idx * stride_pages_[cls];
    if (idx >= slots_per_chunk_[cls] || within >= stride_pages_[cls] - 1) return kNoSlot;
    return (chunk << slot_shift_) | static_cast<std::uint32_t>(idx);
  }

  ThreadCache& my_cache() noexcept {
    ThreadCache& tc = t_cache;
    std::uint64_t e = epoch_.load(std::memory_order_relaxed);
    if (tc.owner != this || tc.epoch != e) [[unlikely]] {
      switch_cache(tc, e);
    }
    return tc;
  }

  void switch_cache(ThreadCache& tc, std::uint64_t e) noexcept {
    hand_back(tc);
    // Whatever is left belongs to a released or destroyed arena: drop it.
    std::memset(tc.free_count, 0, sizeof tc.free_count);
    tc.q_count = 0;
    tc.q_bytes = 0;
    tc.live_blocks = tc.live_bytes = 0;
    tc.quarantined_blocks = tc.quarantined_bytes = 0;
    tc.bound_threads = 0;  // shares recomputed at the next free
    tc.allocations = 0;
    tc.owner = this;
    tc.epoch = e;
    active_caches_.fetch_add(1, std::memory_order_relaxed);
    if (!tc.exit_hook) {
      pthread_once(&g_cache_key_once, create_cache_key);
      pthread_setspecific(g_cache_key, &tc);
      tc.exit_hook = true;
    }
  }

  // The thread's quarantine moves into the class FIFOs (oldest first, so the
  // order is kept) and its free slots onto the class free lists.
  void absorb_thread_cache(ThreadCache& tc) noexcept override {
    while (tc.q_count > 0) {
      std::uint32_t id = tc.q_head;
      tc.q_head = meta_[id].next;
      --tc.q_count;
      std::size_t cls = chunks_[id >> slot_shift_].class_index;
      ClassState& cs = classes_[cls];
      std::lock_guard<ClassLock> g(cs.mu);
      enqueue_locked(id, cs);
    }
    tc.q_bytes = 0;
    fold_stats(tc);  // the global counts the eviction below is judged by
    active_caches_.fetch_sub(1, std::memory_order_relaxed);
    for (std::size_t c = 0; c <= max_class_ && c < ThreadCache::kClasses; ++c) {
      ClassState& cs = classes_[c];
      std::lock_guard<ClassLock> g(cs.mu);
      while (tc.free_count[c] > 0) push_free_locked(pop_thread_free(tc, c), c, cs);
      evict_over_budget_locked(c, cs);
    }
  }

  void fold_stats(ThreadCache& tc) noexcept {
    if (tc.quarantined_blocks != 0 || tc.quarantined_bytes != 0) {
      q_blocks_.fetch_add(static_cast<std::uint64_t>(tc.quarantined_blocks),
                          std::memory_order_relaxed);
      q_bytes_.fetch_add(static_cast<std::uint64_t>(tc.quarantined_bytes),
                         std::memory_order_relaxed);
      tc.quarantined_blocks = tc.quarantined_bytes = 0;
    }
    if (tc.allocations == 0 && tc.live_blocks == 0 && tc.live_bytes == 0) return;
    std::uint64_t lb = live_blocks_.fetch_add(static_cast<std::uint64_t>(tc.live_blocks),
                                              std::memory_order_relaxed) +
                       static_cast<std::uint64_t>(tc.live_blocks);
    std::uint64_t lby = live_bytes_.fetch_add(static_cast<std::uint64_t>(tc.live_bytes),
                                              std::memory_order_relaxed) +
                        static_cast<std::uint64_t>(tc.live_bytes);
    // Another thread may free blocks whose allocation this one has not
    // folded yet, so the sum can dip below zero for a while: a wrapped value
    // must not become the peak.
    update_peak(peak_blocks_, not_negative(lb));
    update_peak(peak_bytes_, not_negative(lby));
    guarded_total_.fetch_add(tc.allocations, std::memory_order_relaxed);
    tc.live_blocks = tc.live_bytes = 0;
    tc.allocations = 0;
  }

  // Fast mode: a slot from the calling thread's free list (slots this thread
  // freed, back from its quarantine), refilled from the class, one lock per
  // kRefill slots, only when the thread allocates more than it frees.
  // `lead_applied`: allocate_small_fast() applied the lead rule for this
  // allocation already (one eviction per allocation, whichever path takes it).
  std::uint32_t take_cached_slot(std::size_t cls, bool lead_applied = false) noexcept {
    ThreadCache& tc = my_cache();
    // The lead rule: once the quarantine is within kLead of its bound, it
    // gives up its oldest slot a little early (ThreadCache::kLead).
    if (!lead_applied && tc.free_count[cls] < ThreadCache::kLead && tc.q_count > 0 &&
        tc.q_count + ThreadCache::kLead > tc.slot_bound)
      evict_from_thread(tc);
    if (tc.free_count[cls] == 0) [[unlikely]] {
      {
        ClassState& cs = classes_[cls];
        std::lock_guard<ClassLock> g(cs.mu);
        while (tc.free_count[cls] < ThreadCache::kRefill) {
          std::uint32_t id = take_slot_locked(cls, cs);
          if (id == kNoSlot) break;
          push_thread_free(tc, id, cls);
        }
      }
      fold_stats(tc);
      if (tc.free_count[cls] == 0) return kNoSlot;
    }
    return pop_thread_free(tc, cls);
  }

  // FIFO, not LIFO: the slot reused next was evicted (and prefetched) several
  // operations ago, so its lines have arrived.
  void push_thread_free(ThreadCache& tc, std::uint32_t id, std::size_t cls) noexcept {
    meta_[id].next = kNoSlot;
    if (tc.free_count[cls] == 0) {
      tc.free_head[cls] = id;
    } else {
      meta_[tc.free_tail[cls]].next = id;
    }
    tc.free_tail[cls] = id;
    ++tc.free_count[cls];
  }

  std::uint32_t pop_thread_free(ThreadCache& tc, std::size_t cls) noexcept {
    std::uint32_t id = tc.free_head[cls];
    tc.free_head[cls] = meta_[id].next;
    --tc.free_count[cls];
    return id;
  }

  // Fast mode's quarantine is per thread: a freed slot waits in the freeing
  // thread's FIFO and comes back to that thread, so two threads never pass
  // slots, metadata lines or a lock between their cores. The budget
  // (quarantine_slots, and quarantine_bytes / fast_quarantine_bytes) is
  // shared evenly by the threads using the arena: one thread gets all of it.
  void quarantine_in_thread(ThreadCache& tc, std::uint32_t id, std::size_t cls) noexcept {
    meta_[id].next = kNoSlot;
    if (tc.q_count == 0) {
      tc.q_head = id;
    } else {
      meta_[tc.q_tail].next = id;
    }
    tc.q_tail = id;
    ++tc.q_count;
    std::uint64_t bytes = class_pages(cls) * page_;
    tc.q_bytes += bytes;
    ++tc.quarantined_blocks;
    tc.quarantined_bytes += static_cast<std::int64_t>(bytes);
    std::uint64_t threads =
        std::max<std::uint64_t>(1, active_caches_.load(std::memory_order_relaxed));
    if (threads != tc.bound_threads) [[unlikely]]
      share_bounds(tc, threads);
    while (tc.q_count > 0 && (tc.q_count > tc.slot_bound || tc.q_bytes > tc.byte_bound))
      evict_from_thread(tc);
  }

  // This thread's share of the bounds, recomputed only when the number of
  // threads changes (divisions stay off the free path). The slot bound also
  // counts the byte bound in one-page slots (the common case), so that the
  // lead rule in take_cached_slot() sees whichever bound applies.
  void share_bounds(ThreadCache& tc, std::uint64_t threads) noexcept {
    tc.bound_threads = threads;
    tc.byte_bound = quarantine_byte_bound() / threads;
    tc.slot_bound =
        std::min<std::uint64_t>(options_.quarantine_slots / threads, tc.byte_bound >> page_shift_);
  }

  // The oldest slot of the thread's quarantine goes to its free list (past
  // kFreeCap, to the class's, where the resident bound applies).
  void evict_from_thread(ThreadCache& tc) noexcept {
    std::uint32_t id = tc.q_head;
    SlotMeta& m = meta_[id];
    tc.q_head = m.next;
    --tc.q_count;
    // The next eviction (usually at the next free) starts from that entry's
    // metadata, cold since it was quarantined.
    if (tc.q_count > 0) __builtin_prefetch(&meta_[tc.q_head]);
    std::size_t cls = chunks_[id >> slot_shift_].class_index;
    std::uint64_t bytes = class_pages(cls) * page_;
    tc.q_bytes -= bytes;
    --tc.quarantined_blocks;
    tc.quarantined_bytes -= static_cast<std::int64_t>(bytes);
    m.state.store(SlotState::kAvailable, std::memory_order_release);
    if (m.open_end > m.open_begin) {
      // Reused soon (often by the very next allocation: see ThreadCache::kLead);
      // its poison check then reads the old block, which left the cache and
      // the TLB during the quarantine: start those loads now (a prefetch never
      // faults).
      std::uintptr_t block = m.block;
      __builtin_prefetch(reinterpret_cast<const void*>(block));
      __builtin_prefetch(reinterpret_cast<const void*>(block - kFastLeadCanary));
    }
    if (tc.free_count[cls] < ThreadCache::kFreeCap) {
      push_thread_free(tc, id, cls);
      return;
    }
    ClassState& cs = classes_[cls];
    std::lock_guard<ClassLock> g(cs.mu);
    push_free_locked(id, cls, cs);
  }

  // Full mode, one-page slots: a slot opened ahead of time. Slots leave the
  // free list kReadyBatch at a time and are opened and committed together
  // (guard backend: two syscalls for the batch instead of one madvise and one
  // page fault each), so a malloc/free pair costs the one syscall that must
  // not wait, the MADV_GUARD_INSTALL at free. The batch has left the
  // quarantine already; only its oldest slots are open early.
  std::uint32_t take_ready_slot(std::size_t cls) noexcept {
    ClassState& cs = classes_[cls];
    std::uint32_t ids[kReadyBatch];
    std::size_t n = 0;
    {
      std::lock_guard<ClassLock> g(cs.mu);
      if (cs.ready_count > 0) return cs.ready[--cs.ready_count];
      while (n < kReadyBatch) {
        std::uint32_t id = take_slot_locked(cls, cs);
        if (id == kNoSlot) break;
        ids[n++] = id;
      }
    }
    if (n == 0) return kNoSlot;
    void* starts[kReadyBatch];
    for (std::size_t i = 0; i < n; ++i)
      starts[i] = reinterpret_cast<void*>(slot_address(ids[i], cls));
    std::size_t usable = class_pages(cls) * page_;
    std::size_t opened = 0;
    if constexpr (Backend::kBatchesOpen) opened = Backend::open_many(starts, usable, n);
    for (std::size_t i = 0; i < opened; ++i) {
      meta_[ids[i]].open_begin = 0;
      meta_[ids[i]].open_end = usable;
    }
    // ENOMEM part way: the caller opens the first slot itself (and applies
    // the exhaustion policy if that fails too); the rest go back unopened.
    std::lock_guard<ClassLock> g(cs.mu);
    for (std::size_t i = n; i-- > 1;) {
      // Another thread may have refilled the list meanwhile: the extra open
      // slots wait on the free list (allocate() takes an open slot as is).
      if (i < opened && cs.ready_count < kReadyBatch) {
        cs.ready[cs.ready_count++] = ids[i];
      } else {
        push_free_locked(ids[i], cls, cs);
      }
    }
    return ids[0];
  }

  std::uint32_t take_slot(std::size_t cls) noexcept {
    ClassState& cs = classes_[cls];
    std::lock_guard<ClassLock> g(cs.mu);
    return take_slot_locked(cls, cs);
  }

  // Free list of slots back from quarantine. In fast mode they keep their
  // (poisoned) pages; past kFastResidentPerClass bytes per class the pages go
  // back to the kernel, so a burst of frees does not pin its peak RSS.
  void push_free_locked(std::uint32_t id, std::size_t cls, ClassState& cs) noexcept {
    SlotMeta& m = meta_[id];
    std::uint64_t open = m.open_end - m.open_begin;
    if (open != 0 && cs.free_resident + open > kFastResidentPerClass) {
      close_slot(m, slot_address(id, cls));
      open = 0;
    }
    cs.free_resident += open;
    m.next = cs.free_head;
    cs.free_head = id;
  }

  std::uint32_t pop_free_locked(ClassState& cs) noexcept {
    std::uint32_t id = cs.free_head;
    SlotMeta& m = meta_[id];
    cs.free_head = m.next;
    cs.free_resident -= m.open_end - m.open_begin;
    return id;
  }

  std::uint32_t take_slot_locked(std::size_t cls, ClassState& cs) noexcept {
    if (cs.free_head != kNoSlot) return pop_free_locked(cs);
    if (cs.cur_chunk == kNoSlot || cs.next_index == cs.slots_in_chunk) {
      std::uint32_t c = take_run(1, false);
      if (c == kNoSlot) {
        // Address space is used up: reuse the oldest quarantined slot rather
        // than fail while the quarantine holds slots of this class.
        if (cs.q_head == kNoSlot) return kNoSlot;
        evict_one(cls, cs);
        return pop_free_locked(cs);
      }
      chunks_[c].class_index = static_cast<std::uint8_t>(cls);
      chunks_[c].kind.store(ChunkKind::kClass, std::memory_order_release);
      cs.cur_chunk = c;
      cs.next_index = 0;
      cs.slots_in_chunk =
          static_cast<std::uint32_t>(SlotGeometry{page_, class_pages(cls)}.slots_in(chunk_bytes_));
    }
    return (cs.cur_chunk << slot_shift_) | cs.next_index++;
  }

  // A run of `len` free chunks, prepared for the backend; kNoSlot when the
  // reservation is full. Large runs are marked in the chunk table here.
  std::uint32_t take_run(std::uint32_t len, bool large) noexcept {
    std::uint32_t start = kNoSlot;
    {
      std::lock_guard<std::mutex> g(chunk_mu_);
      for (int attempt = 0; attempt < 2 && start == kNoSlot; ++attempt) {
        for (std::uint32_t i = 0; i < free_run_count_; ++i) {
          if (free_runs_[i].len >= len) {
            start = free_runs_[i].start;
            free_runs_[i].start += len;
            free_runs_[i].len -= len;
            if (free_runs_[i].len == 0) free_runs_[i] = free_runs_[--free_run_count_];
            break;
          }
        }
        if (start == kNoSlot && num_chunks_ - next_chunk_ >= len) {
          start = next_chunk_;
          next_chunk_ += len;
        }
        // The rest of the reservation is used up: recycle what release()
        // retired, then look again.
        if (start != kNoSlot || released_end_ == 0) break;
        recycle_released_locked();
      }
      if (start == kNoSlot) return kNoSlot;
      if (large) {
        for (std::uint32_t c = start; c < start + len; ++c) {
          chunks_[c].head = start;
          chunks_[c].class_index = static_cast<std::uint8_t>(large_class());
        }
        chunks_[start].run_len = len;
      }
    }
    for (std::uint32_t c = start; c < start + len; ++c) {
      if (chunks_[c].prepared) continue;
      // prepare_chunk fails only on ENOMEM (page tables, commit limit).
      if (!Backend::prepare_chunk(reinterpret_cast<void*>(base_ + std::uintptr_t{c} * chunk_bytes_),
                                  chunk_bytes_)) {
        give_back_run(start, len);
        return kNoSlot;
      }
      chunks_[c].prepared = 1;
    }
    if (large) {
      for (std::uint32_t c = start; c < start + len; ++c)
        chunks_[c].kind.store(ChunkKind::kLarge, std::memory_order_release);
    }
    return start;
  }

  void recycle_released_locked() noexcept {
    std::uint32_t run_start = kNoSlot;
    for (std::uint32_t c = 0; c <= released_end_; ++c) {
      bool released = c < released_end_ &&
                      chunks_[c].kind.load(std::memory_order_relaxed) == ChunkKind::kReleased;
      if (released) {
        chunks_[c].kind.store(ChunkKind::kFree, std::memory_order_release);
        if (run_start == kNoSlot) run_start = c;
      } else if (run_start != kNoSlot) {
        free_runs_[free_run_count_++] = FreeRun{run_start, c - run_start};
        run_start = kNoSlot;
      }
    }
    released_end_ = 0;
  }

  void give_back_run(std::uint32_t start, std::uint32_t len) noexcept {
    std::lock_guard<std::mutex> g(chunk_mu_);
    for (std::uint32_t c = start; c < start + len; ++c)
      chunks_[c].kind.store(ChunkKind::kFree, std::memory_order_release);
    // Merge with an adjacent free run when there is one; the list stays short
    // because only large blocks ever give chunks back.
    for (std::uint32_t i = 0; i < free_run_count_; ++i) {
      FreeRun& r = free_runs_[i];
      if (r.start + r.len == start) {
        r.len += len;
        return;
      }
      if (start + len == r.start) {
        r.start = start;
        r.len += len;
        return;
      }
    }
    free_runs_[free_run_count_++] = FreeRun{start, len};
  }

  void* give_back_and_exhaust(
      std::uint32_t id, std::size_t cls, std::size_t size, std::size_t align, bool zero,
      const char* why = "the kernel refused more guard pages (ENOMEM)") noexcept {
    if (cls == large_class()) {
      give_back_run(id >> slot_shift_, chunks_[id >> slot_shift_].run_len);
    } else {
      ClassState& cs = classes_[cls];
      std::lock_guard<ClassLock> g(cs.mu);
      push_free_locked(id, cls, cs);
    }
    return exhausted(size, align, zero, why);
  }

  void* exhausted(std::size_t size, std::size_t align, bool zero, const char* why) noexcept {
    if (options_.on_exhaustion == Exhaustion::kFail || fallback_.allocate == nullptr) {
      failed_total_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    void* p = fallback_.allocate(size == 0 ? 1 : size, align < 16 ? 16 : align);
    if (p == nullptr) {
      failed_total_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    if (!fallback_set_.insert(reinterpret_cast<std::uintptr_t>(p))) {
      fallback_.deallocate(p);
      failed_total_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    warn_fallback_once(why);
    if (zero) std::memset(p, 0, size);
    fallback_total_.fetch_add(1, std::memory_order_relaxed);
    fallback_live_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }

  void release_fallbacks() noexcept {
    fallback_set_.drain(
        [this](std::uintptr_t p) { fallback_.deallocate(reinterpret_cast<void*>(p)); });
    fallback_live_ = 0;
  }

  void close_slot(SlotMeta& m, std::uintptr_t slot_start) noexcept {
    if (m.open_end <= m.open_begin) return;
    bool ok = Backend::close(reinterpret_cast<void*>(slot_start + m.open_begin),
                             m.open_end - m.open_begin);
    if (!ok) {
      // Could not take access away (ENOMEM on page tables): the block stays
      // readable but its contents are dropped so stale reads see zeros.
      os::discard(reinterpret_cast<void*>(slot_start + m.open_begin), m.open_end - m.open_begin);
      return;
    }
    m.open_begin = m.open_end = 0;
    if constexpr (Backend::kCountsVmas) {
      g_open_regions.fetch_sub(1, std::memory_order_relaxed);
      open_regions_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  std::size_t slot_quarantine_bytes(std::uint32_t id, std::size_t cls) const noexcept {
    if (cls == large_class()) return std::size_t{chunks_[id >> slot_shift_].run_len} * chunk_bytes_;
    return class_pages(cls) * page_;
  }

  void quarantine(std::uint32_t id, std::size_t cls) noexcept {
    ClassState& cs = classes_[cls];
    std::lock_guard<ClassLock> g(cs.mu);
    quarantine_locked(id, cls, cs);
  }

  void quarantine_locked(std::uint32_t id, std::size_t cls, ClassState& cs) noexcept {
    enqueue_locked(id, cs);
    q_blocks_.fetch_add(1, std::memory_order_relaxed);
    q_bytes_.fetch_add(slot_quarantine_bytes(id, cls), std::memory_order_relaxed);
    evict_over_budget_locked(cls, cs);
  }

  std::uint64_t quarantine_byte_bound() const noexcept {
    if (options_.mode == Mode::kFast)
      return std::min(options_.quarantine_bytes, options_.fast_quarantine_bytes);
    return options_.quarantine_bytes;
  }

  void enqueue_locked(std::uint32_t id, ClassState& cs) noexcept {
    meta_[id].next = kNoSlot;
    if (cs.q_tail == kNoSlot) {
      cs.q_head = id;
    } else {
      meta_[cs.q_tail].next = id;
    }
    cs.q_tail = id;
  }

  // The budget is global; each class evicts its own oldest entries, so the
  // bound holds within one batch and no class lock is ever nested.
  void evict_over_budget_locked(std::size_t cls, ClassState& cs) noexcept {
    std::uint64_t blocks = q_blocks_.load(std::memory_order_relaxed);
    std::uint64_t bytes = q_bytes_.load(std::memory_order_relaxed);
    std::uint64_t byte_bound = quarantine_byte_bound();
    std::uint64_t evicted = 0;
    std::uint64_t evicted_bytes = 0;
    while (cs.q_head != kNoSlot &&
           (blocks - evicted > options_.quarantine_slots || bytes - evicted_bytes > byte_bound)) {
      evicted_bytes += slot_quarantine_bytes(cs.q_head, cls);
      ++evicted;
      evict_one(cls, cs, false);
    }
    if (evicted != 0) {
      q_blocks_.fetch_sub(evicted, std::memory_order_relaxed);
      q_bytes_.fetch_sub(evicted_bytes, std::memory_order_relaxed);
    }
  }

  // Moves the oldest quarantined slot of `cls` to reuse. Caller holds cs.mu.
  void evict_one(std::size_t cls, ClassState& cs, bool count = true) noexcept {
    std::uint32_t id = cs.q_head;
    SlotMeta& m = meta_[id];
    cs.q_head = m.next;
    if (cs.q_head == kNoSlot) cs.q_tail = kNoSlot;
    if (count) {
      q_blocks_.fetch_sub(1, std::memory_order_relaxed);
      q_bytes_.fetch_sub(slot_quarantine_bytes(id, cls), std::memory_order_relaxed);
    }
    m.state.store(SlotState::kAvailable, std::memory_order_release);
    if (cls == large_class()) {
      std::uint32_t head = id >> slot_shift_;
      give_back_run(head, chunks_[head].run_len);
      return;
    }
    push_free_locked(id, cls, cs);
  }

  void write_canaries(std::uintptr_t slot_start, std::size_t open_begin, std::size_t offset,
                      std::size_t s, std::size_t open_end) noexcept {
    // Zero-length fills are skipped on purpose: a memset of 0 bytes at the
    // first byte of a guard page takes glibc's slow masked-store path.
    std::size_t lead_begin = open_begin;
    if (options_.mode == Mode::kFast && offset - lead_begin > kFastLeadCanary)
      lead_begin = offset - kFastLeadCanary;
    if (offset > lead_begin)
      fill_bytes(reinterpret_cast<unsigned char*>(slot_start + lead_begin), offset - lead_begin,
                 kCanaryByte);
    std::size_t tail = offset + s;
    std::size_t tail_end = std::min(open_end, round_up(tail, page_));
    if (tail_end > tail)
      std::memset(reinterpret_cast<void*>(slot_start + tail), kCanaryByte, tail_end - tail);
  }

  void check_canaries(const SlotMeta& m, std::uintptr_t slot_start) noexcept {
    std::size_t s = m.size == 0 ? 1 : m.size;
    std::size_t tail = m.offset + s;
    std::size_t tail_end = std::min<std::size_t>(m.open_end, round_up(tail, page_));
    auto* base = reinterpret_cast<const unsigned char*>(slot_start);
    std::size_t bad_end =
        tail_end > tail && !all_bytes_are(base + tail, tail_end - tail, kCanaryByte)
            ? last_mismatch_end(base + tail, tail_end - tail, kCanaryByte)
            : 0;
    if (bad_end != 0) {
      Finding r = make_finding(ErrorKind::kSlackOverflow, slot_start + tail, m, slot_start);
      r.bad_bytes = bad_end;
      r.distance = static_cast<std::int64_t>(s);
      report_finding(r);
    }
    std::size_t lead_begin = m.open_begin;
    if (options_.mode == Mode::kFast && m.offset - lead_begin > kFastLeadCanary)
      lead_begin = m.offset - kFastLeadCanary;
    std::size_t lead = m.offset - lead_begin;
    if (all_bytes_are(base + lead_begin, lead, kCanaryByte)) return;
    std::size_t first_bad = first_mismatch(base + lead_begin, lead, kCanaryByte);
    if (first_bad != lead) {
      std::size_t i = lead_begin + first_bad;
      Finding r = make_finding(ErrorKind::kSlackUnderflow, slot_start + i, m, slot_start);
      r.bad_bytes = m.offset - i;
      r.distance = -static_cast<std::int64_t>(m.offset - i);
      report_finding(r);
    }
  }

  // Fast mode: a freed block was poisoned; any change means a write after free.
  void check_poison(const SlotMeta& m, std::uintptr_t slot_start) noexcept {
    std::size_t s = m.size == 0 ? 1 : m.size;
    if (s > kFastPoisonLimit) return;
    auto* p = reinterpret_cast<const unsigned char*>(slot_start + m.offset);
    if (all_bytes_are(p, s, kPoisonByte)) return;
    std::size_t i = first_mismatch(p, s, kPoisonByte);
    if (i != s) {
      Finding r =
          make_finding(ErrorKind::kWriteAfterFree, slot_start + m.offset + i, m, slot_start);
      r.distance = static_cast<std::int64_t>(i);
      report_finding(r);
    }
  }

  void fill_block(BlockInfo& b, const SlotMeta& m, std::uintptr_t slot_start) const noexcept {
    b.block = slot_start + m.offset;
    b.size = m.size;
    b.align = std::uint64_t{1} << m.align_log2;
    b.alloc_kind = m.alloc_kind;
    b.alloc_stack = m.alloc_stack;
    b.free_stack = m.free_stack;
    b.alloc_tid = m.alloc_tid;
    b.free_tid = m.free_tid;
  }

  Finding make_finding(ErrorKind k, std::uintptr_t addr, const SlotMeta& m,
                       std::uintptr_t slot_start) const noexcept {
    Finding r;
    r.kind = k;
    r.address = addr;
    r.has_block = true;
    fill_block(r.block, m, slot_start);
    r.distance = static_cast<std::int64_t>(addr - r.block.block);
    return r;
  }

  [[noreturn]] void report_block(ErrorKind k, std::uintptr_t a, const SlotMeta& m,
                                 std::uintptr_t slot_start, AllocKind kind) noexcept {
    Finding r = make_finding(k, a, m, slot_start);
    r.dealloc_kind = static_cast<std::uint8_t>(kind);
    report_finding(r);
  }

  [[noreturn]] void invalid_free(std::uintptr_t a, AllocKind kind, const SlotMeta* m,
                                 std::uintptr_t slot_start = 0) noexcept {
    Finding r;
    r.kind = ErrorKind::kInvalidFree;
    r.address = a;
    r.dealloc_kind = static_cast<std::uint8_t>(kind);
    if (m != nullptr) {
      r.has_block = true;
      fill_block(r.block, *m, slot_start);
      r.distance = static_cast<std::int64_t>(a - r.block.block);
    }
    report_finding(r);
  }

  FallbackAllocator fallback_;
  std::size_t page_ = 0;
  std::size_t chunk_bytes_ = 0;
  std::size_t max_class_ = 0;
  bool fast_small_ = false;      // fast mode without protect_below: see allocate_small_fast()
  std::uint32_t max_slots_ = 0;  // power of two
  std::uint32_t slot_shift_ = 0;
  std::uint32_t page_shift_ = 0;
  std::uint32_t chunk_shift_ = 0;  // chunk_bytes_ is a power of two (pages are)
  std::uint32_t stride_pages_[kMaxClasses] = {};
  std::uint64_t stride_magic_[kMaxClasses] = {};
  std::uint32_t slots_per_chunk_[kMaxClasses] = {};
  std::uint32_t num_chunks_ = 0;
  SlotMeta* meta_ = nullptr;
  std::size_t meta_bytes_ = 0;
  ChunkInfo* chunks_ = nullptr;
  FreeRun* free_runs_ = nullptr;
  std::size_t chunk_table_bytes_ = 0;
  std::mutex chunk_mu_;
  std::uint32_t next_chunk_ = 0;
  std::uint32_t released_end_ = 0;  // chunks below it were retired by release()
  std::uint32_t free_run_count_ = 0;
  ClassState classes_[kMaxClasses + 1];
  FallbackSet fallback_set_;
  std::atomic<std::uint64_t> live_blocks_{0}, live_bytes_{0}, peak_blocks_{0}, peak_bytes_{0};
  std::atomic<std::uint64_t> guarded_total_{0}, fallback_total_{0}, failed_total_{0};
  std::atomic<std::uint64_t> q_blocks_{0}, q_bytes_{0};
  // Fast mode: threads whose cache belongs to this arena at this epoch.
  std::atomic<std::uint64_t> active_caches_{0};
  std::atomic<std::int64_t> open_regions_{0};
};

template <class Impl>
Arena* construct(void* storage, const Options& o, FallbackAllocator fb,
                 ArenaError* error) noexcept {
  auto* a = new (storage) Impl(o, fb);
  if (!a->init(error)) {
    a->~Impl();
    return nullptr;
  }
  for (auto& slot : g_arenas) {
    Arena* expected = nullptr;
    if (slot.compare_exchange_strong(expected, a)) return a;
  }
  // An arena missing from the registry would run without fault reports
  // (find_owner) and, in fast mode, silently drop other threads' cached slots
  // and counters (is_current): refuse it rather than guard it half.
  a->~Impl();
  *error = ArenaError::kRegistryFull;
  return nullptr;
}

}  // namespace

std::size_t Arena::storage_size() noexcept {
  return std::max(sizeof(ArenaImpl<os::GuardRegionBackend>),
                  sizeof(ArenaImpl<os::MprotectBackend>));
}

const char* arena_error_message(ArenaError e) noexcept {
  switch (e) {
    case ArenaError::kNone:
      return "guardarena: no error";
    case ArenaError::kBackendUnavailable:
      return "guardarena: backend=guard needs MADV_GUARD_INSTALL (Linux 6.13+); this kernel lacks "
             "it (use backend=mprotect or auto)";
    case ArenaError::kNoAddressSpace:
      return "guardarena: cannot reserve address space for the arena (ulimit -v too low?)";
    case ArenaError::kNoMetadata:
      return "guardarena: cannot map allocator metadata";
    case ArenaError::kRegistryFull:
      return "guardarena: cannot reserve a registry slot: 256 arenas are alive already";
  }
  return "guardarena: cannot create the arena";
}

Arena* Arena::create(void* storage, const Options& o, FallbackAllocator fb,
                     ArenaError* error) noexcept {
  ArenaError ignored = ArenaError::kNone;
  if (error == nullptr) error = &ignored;
  *error = ArenaError::kNone;
  bool guard = false;
  switch (o.backend) {
    case Backend::kGuard:
      if (!os::guard_regions_supported()) {
        *error = ArenaError::kBackendUnavailable;
        return nullptr;
      }
      guard = true;
      break;
    case Backend::kMprotect:
      guard = false;
      break;
    case Backend::kAuto:
      guard = os::guard_regions_supported();
      break;
  }
  if (guard) return construct<ArenaImpl<os::GuardRegionBackend>>(storage, o, fb, error);
  return construct<ArenaImpl<os::MprotectBackend>>(storage, o, fb, error);
}

Arena* Arena::find_owner(std::uintptr_t addr) noexcept {
  for (auto& slot : g_arenas) {
    Arena* a = slot.load(std::memory_order_acquire);
    if (a != nullptr && a->owns(reinterpret_cast<const void*>(addr))) return a;
  }
  return nullptr;
}

bool Arena::is_current(const Arena* a, std::uint64_t epoch) noexcept {
  for (auto& slot : g_arenas) {
    if (slot.load(std::memory_order_acquire) == a) return a->epoch() == epoch;
  }
  return false;
}

void unregister_arena(Arena* a) noexcept {
  g_handback_lock.lock();  // no hand-back into `a` in flight
  for (auto& slot : g_arenas) {
    Arena* expected = a;
    if (slot.compare_exchange_strong(expected, nullptr)) break;
  }
  g_handback_lock.unlock();
}

void reset_tid_cache() noexcept {
  t_tid = 0;
}

std::uint32_t current_tid() noexcept {
  if (t_tid == 0) t_tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  return t_tid;
}

}  // namespace guardarena
