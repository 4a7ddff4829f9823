// ArenaImpl: the arena, templated over the guard backend, composing the core's
// units (chunk table, slot lists, quarantine, thread caches, canaries,
// fallback blocks, counters, budgets). This header holds the class and the
// paths every allocation and free takes; arena_fast_mode.h (fast mode's
// per-thread side), arena_slots.h (where slots come from and go back to),
// arena_limits.h (refusals at a budget and the rationing after them) and
// arena_whole_heap.h (release, flush, heap walks, fork locking, statistics)
// hold the rest of its members. Internal to arena.cpp, the one file that
// instantiates it. Design reasoning (chunk layout, quarantine, VMA and
// memory budgets) is in docs/design.md.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>

#include "core/address_query.h"
#include "core/arena.h"
#include "core/canary.h"
#include "core/chunk_table.h"
#include "core/fallback.h"
#include "core/free_checks.h"
#include "core/guard_rationing.h"
#include "core/hooks.h"
#include "core/memory_budget.h"
#include "core/metadata.h"
#include "core/quarantine.h"
#include "core/slot.h"
#include "core/slot_list.h"
#include "core/stats.h"
#include "core/thread_cache.h"
#include "core/vma_budget.h"
#include "os/check.h"
#include "os/guard_backend.h"
#include "os/os_linux.h"
#include "os/thread.h"

// An unnamed namespace: arena.cpp is the one file that includes this, and
// internal linkage lets the compiler inline paths called from one place.
namespace guardarena {
namespace {

// Alignments fast mode's shortest path places (malloc's and new's default).
inline constexpr std::size_t kFastPathAlign = 16;
// Fast mode: resident bytes a class keeps on its free list before freed
// slots' pages go back to the kernel.
inline constexpr std::uint64_t kFastResidentPerClass = 8u << 20;
inline constexpr std::size_t kChunkPages = 16384;  // 64 MiB chunks with 4 KiB pages
inline constexpr std::size_t kMaxClasses = ChunkTable::kMaxClasses;
// Full mode: one-page slots opened per batch (see take_ready_slot).
inline constexpr std::size_t kReadyBatch = os::kMaxBatch;
// Fast mode: most slots closed or opened ahead in one batch, one syscall
// (os::kRangesPerCall).
inline constexpr std::size_t kSlotBatch = os::kRangesPerCall;

// A class's room to build a batch in (under the class lock); in its own
// mapping, not on the stack of whichever thread refills.
struct SlotBatch {
  std::uint32_t ids[kSlotBatch];
  os::Range ranges[kSlotBatch];
};

// Source of arena epochs.
std::atomic<std::uint64_t> g_next_epoch{1};

// The class locks are held for a thread-cache refill or a quarantine batch (a
// few hundred ns): a waiter spins briefly instead of sleeping.
using ClassLock = os::AdaptiveMutex;

template <os::GuardBackend Backend>
class ArenaImpl final : public Arena {
 public:
  ArenaImpl(const Options& o, FallbackAllocator fb) noexcept : Arena(o), fallback_alloc_(fb) {
    epoch_.store(g_next_epoch.fetch_add(1), std::memory_order_relaxed);
  }

  bool init(ArenaError* error) noexcept {
    page_ = os::page_size();
    chunk_bytes_ = kChunkPages * page_;
    small_fast_path_ =
        options_.mode == Mode::kFast && !options_.protect_below && page_ <= kFastPoisonLimit;
    max_class_ = class_for_pages(kChunkPages / 4);
    GUARDARENA_CHECK(max_class_ < kMaxClasses && max_class_ < ThreadCache::kClasses,
                     "too many size classes");
    page_shift_ = static_cast<std::uint32_t>(std::countr_zero(page_));
    table_.init_geometry(page_, chunk_bytes_, max_class_);
    static_assert(std::uint64_t{kChunkPages} * (kChunkPages / 4 + 1) < (std::uint64_t{1} << 32),
                  "the reciprocal division in ChunkTable::slot_of() must stay exact");
    std::uint64_t want = std::max<std::uint64_t>(options_.reserve_size / chunk_bytes_, 2);
    // Halve until the kernel agrees (RLIMIT_AS, overcommit limits); two
    // chunks still serve small blocks of two classes and fall back beyond.
    void* base = nullptr;
    while (want >= 2) {
      if (want * table_.max_slots() < kNoSlot) {
        base = os::reserve(want * chunk_bytes_, chunk_bytes_, "guardarena:heap");
        if (base != nullptr) break;
      }
      want /= 2;
    }
    if (base == nullptr) {
      *error = ArenaError::kNoAddressSpace;
      return false;
    }
    const auto num_chunks = static_cast<std::uint32_t>(want);
    base_ = reinterpret_cast<std::uintptr_t>(base);
    span_ = num_chunks * chunk_bytes_;
    meta_bytes_ = std::size_t{num_chunks} * table_.max_slots() * sizeof(SlotMeta);
    meta_ = static_cast<SlotMeta*>(os::map_internal(meta_bytes_, "guardarena:meta"));
    batches_ = static_cast<SlotBatch*>(os::map_internal(batches_bytes(), "guardarena:batch"));
    if (meta_ == nullptr || batches_ == nullptr || !table_.map(base_, num_chunks) ||
        !fallback_.init(options_.on_exhaustion, fallback_alloc_)) {
      *error = ArenaError::kNoMetadata;
      return false;
    }
    if constexpr (Backend::kCountsVmas) vmas_.init(options_.vma_headroom);
    budget_.init(options_.max_guarded_memory);
    return true;
  }

  ~ArenaImpl() override {
    unregister_arena(this);
    if constexpr (Backend::kCountsVmas) {
      vmas_.close_all();
    }
    budget_.uncharge_all();
    os::release(reinterpret_cast<void*>(base_), span_);
    os::release(meta_, meta_bytes_);
    if (batches_ != nullptr) os::release(batches_, batches_bytes());
    table_.unmap();
    fallback_.destroy();
  }

  void* allocate(std::size_t size, std::size_t align, AllocKind kind, bool zero) noexcept override {
    bool evicted_ahead = false;
    if (small_fast_path_ && size - 1 < page_ && align <= kFastPathAlign) [[likely]] {
      if (void* p = allocate_small_fast(size, align, kind, zero, evicted_ahead)) return p;
    }
    // errno must survive a successful allocation. The short path's only
    // system calls (closing slots past the resident bound, on eviction) go
    // through os::, which keeps errno; this path also calls glibc (fallback
    // blocks), which may not.
    const int saved_errno = errno;
    void* p = allocate_general(size, align, kind, zero, evicted_ahead);
    if (p != nullptr) errno = saved_errno;
    return p;
  }

  // allocate() past the short path.
  void* allocate_general(std::size_t size, std::size_t align, AllocKind kind, bool zero,
                         bool evicted_ahead) noexcept {
    if (align < 1) align = 1;
    if (size > span_ || align > span_ / 4)
      return serve_by_exhaustion_policy(size, align, zero, "request larger than the arena");
    // At a limit, only drawn allocations may open slots (core/guard_rationing.h).
    if (rationing_.active() && !rationing_.draw()) [[unlikely]]
      return serve_rationed_out(size, align, zero);
    std::size_t need = slot_bytes_needed(size, align, page_);
    std::size_t cls = class_for_pages(need >> page_shift_);
    std::uint32_t id = kNoSlot;
    std::uintptr_t slot_start = 0;
    std::size_t usable = 0;
    if (cls <= max_class_) {
      if (options_.mode == Mode::kFast) {
        id = take_cached_slot(cls, evicted_ahead);
      } else if (Backend::kBatchesOpen && cls == 0) {
        id = take_ready_slot(cls);
      } else {
        id = take_slot(cls);
      }
      if (id == kNoSlot)
        return serve_by_exhaustion_policy(size, align, zero,
                                          "the arena's address space is exhausted");
      slot_start = slot_address(id, cls);
      usable = class_pages(cls) * page_;
    } else {
      cls = large_class();
      std::size_t run = (need + 2 * page_ + chunk_bytes_ - 1) / chunk_bytes_;
      std::uint32_t first = take_run(static_cast<std::uint32_t>(run), true);
      if (first == kNoSlot)
        return serve_by_exhaustion_policy(size, align, zero,
                                          "the arena's address space is exhausted");
      id = table_.slot_id(first, 0);
      slot_start = base_ + std::uintptr_t{first} * chunk_bytes_ + page_;
      usable = run * chunk_bytes_ - 2 * page_;
    }
    SlotMeta& m = meta_[id];
    Placement pl = place_block(slot_start, usable, size, align, options_.protect_below, page_);
    // Open already: a fast-mode slot recycled with its pages, or a full-mode
    // slot opened ahead in a batch (take_ready_slot).
    bool slot_was_open = m.open_end > m.open_begin;
    bool fast = options_.mode == Mode::kFast;
    if (slot_was_open) {
      if (fast && m.pages_zero == 0) check_slot_poison(m, slot_start);
      // Widen the open range to what the new block needs; never shrink it
      // in fast mode (that would cost a syscall on every reuse).
      std::size_t wide_begin = std::min<std::size_t>(pl.open_begin, m.open_begin);
      std::size_t wide_end = std::max<std::size_t>(pl.open_end, m.open_end);
      const std::uint64_t more = (m.open_begin - wide_begin) + (wide_end - m.open_end);
      if (more != 0 && !budget_.try_charge(more))
        return refuse_at_limit(id, cls, size, align, zero, GuardLimit::kMemory);
      if (wide_begin < m.open_begin &&
          !Backend::open(reinterpret_cast<void*>(slot_start + wide_begin),
                         m.open_begin - wide_begin)) {
        budget_.uncharge(more);
        return return_slot_and_fall_back(id, cls, size, align, zero);
      }
      if (wide_end > m.open_end &&
          !Backend::open(reinterpret_cast<void*>(slot_start + m.open_end), wide_end - m.open_end)) {
        budget_.uncharge(more);
        return return_slot_and_fall_back(id, cls, size, align, zero);
      }
      pl.open_begin = wide_begin;
      pl.open_end = wide_end;
    } else {
      // The pages and the slot's metadata record, uncharged by close_slot().
      const std::uint64_t charge = pl.open_end - pl.open_begin + kSlotRecordBytes;
      if (!budget_.try_charge(charge))
        return refuse_at_limit(id, cls, size, align, zero, GuardLimit::kMemory);
      if constexpr (Backend::kCountsVmas) {
        if (!vmas_.try_open(options_.vma_headroom)) {
          budget_.uncharge(charge);
          return refuse_at_limit(id, cls, size, align, zero, GuardLimit::kMappings);
        }
      }
      if (!Backend::open(reinterpret_cast<void*>(slot_start + pl.open_begin),
                         pl.open_end - pl.open_begin)) {
        if constexpr (Backend::kCountsVmas) vmas_.closed();
        budget_.uncharge(charge);
        return return_slot_and_fall_back(id, cls, size, align, zero);
      }
    }
    if (rationing_.active()) [[unlikely]]
      ease_rationing_if_room();
    auto* p = reinterpret_cast<unsigned char*>(slot_start + pl.offset);
    std::size_t s = size == 0 ? 1 : size;
    // Full mode's open slots are fresh pages: already zero.
    if (zero && slot_was_open && fast && m.pages_zero == 0) std::memset(p, 0, s);
    write_canaries(slot_start, pl.open_begin, pl.offset, s, pl.open_end);
    m.alloc_kind = static_cast<std::uint8_t>(kind);
    m.align_log2 = static_cast<std::uint8_t>(std::countr_zero(align));
    m.pages_zero = 0;
    m.size = size;
    m.offset = pl.offset;
    m.block = reinterpret_cast<std::uintptr_t>(p);
    m.open_begin = pl.open_begin;
    m.open_end = pl.open_end;
    m.alloc_stack = capture_stack_id();
    m.free_stack.store(0, std::memory_order_relaxed);
    m.alloc_tid = os::current_tid();
    m.free_tid.store(0, std::memory_order_relaxed);
    m.state.store(SlotState::kLive, std::memory_order_release);
    if (options_.mode == Mode::kFast && cls != large_class()) {
      // Counted in the thread cache, folded in at the next refill or flush.
      ThreadCache& tc = t_cache;
      ++tc.live_blocks;
      tc.live_bytes += static_cast<std::int64_t>(size);
      ++tc.allocations;
      return p;
    }
    live_.add(1, static_cast<std::int64_t>(size), 1);
    return p;
  }

  FreeResult deallocate(void* ptr, std::size_t size, std::size_t align,
                        AllocKind kind) noexcept override {
    auto a = reinterpret_cast<std::uintptr_t>(ptr);
    if (small_fast_path_ && owns(ptr) && deallocate_small_fast(a, size, align, kind)) [[likely]]
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
      return fallback_.free_if_ours(a) ? FreeResult::kFreed : FreeResult::kNotOurs;
    }
    std::size_t cls = 0;
    std::uint32_t id = slot_of(a, cls);
    if (id == kNoSlot) report_invalid_free(a, kind, nullptr, 0);
    SlotMeta& m = meta_[id];
    // The block's address as allocate() recorded it: a load instead of the
    // slot arithmetic (meaningful while the slot is live, which the state
    // check below establishes before anything relies on it).
    std::uintptr_t block = m.block;
    std::uintptr_t slot_start = block - m.offset;
    SlotState expected = SlotState::kLive;
    if (a != block || !m.state.compare_exchange_strong(expected, SlotState::kFreeing,
                                                       std::memory_order_acq_rel)) {
      report_failed_free(m, a, block, slot_start, kind);
    }
    // From here this thread owns the slot: no other free can pass the CAS.
    check_free_matches(m, a, slot_start, size, align, kind);
    check_canaries(m, slot_start);
    m.free_stack.store(capture_stack_id(), std::memory_order_relaxed);
    m.free_tid.store(os::current_tid(), std::memory_order_release);
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
      // Before the push: a quarantine that evicts at once makes it kAvailable.
      m.state.store(SlotState::kQuarantined, std::memory_order_release);
      quarantine_in_thread(tc, id, cls);
      return FreeResult::kFreed;
    }
    live_.remove(m.size);
    close_slot(m, slot_start);
    m.state.store(SlotState::kQuarantined, std::memory_order_release);
    quarantine(id, cls);
    return FreeResult::kFreed;
  }

  bool owns_block(const void* p) const noexcept override {
    if (!owns(p)) return fallback_.contains(reinterpret_cast<std::uintptr_t>(p));
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
    describe_address(table_, meta_, addr, out);
    return true;
  }

  // Operations over the whole heap (arena_whole_heap.h).
  void release_all() noexcept override;
  void flush_quarantine() noexcept override;
  void for_each_live(void (*fn)(const BlockInfo&, void*), void* ctx) const noexcept override;
  std::size_t check_heap(void (*fn)(const Finding&, void*), void* ctx) const noexcept override;
  // Calls f(meta, slot start, class) for every slot of every chunk in use.
  template <class F>
  void for_each_slot(F&& f) const noexcept;
  // Lock order everywhere: hand-back lock (write side here), class lock, then
  // chunk lock; the fallback set's lock is never held with the last two.
  void lock_all() noexcept override;
  void unlock_all() noexcept override;
  ArenaStats stats() const noexcept override;

 private:
  struct alignas(64) ClassState {
    ClassLock mu;
    // Slots back from quarantine: open ones (reused first, so a slot is
    // closed and reopened only when the free list really shrinks and grows
    // by a batch) and closed ones.
    SlotStack free_open;
    SlotStack free_closed;
    std::uint32_t cur_chunk = kNoSlot;  // chunk being bump-allocated
    std::uint32_t next_index = 0;
    std::uint32_t slots_in_chunk = 0;
    std::uint32_t opened_until = 0;  // fast mode: fresh slots below this index are open
    SlotFifo quarantine;
    std::uint64_t free_resident = 0;  // open bytes of slots on free_open
    std::uint32_t ready_count = 0;    // full mode: slots opened ahead
    std::uint32_t ready[kReadyBatch];
    void reset() noexcept {
      free_resident = 0;
      ready_count = 0;
      free_open.clear();
      free_closed.clear();
      quarantine.clear();
      cur_chunk = kNoSlot;
      next_index = slots_in_chunk = opened_until = 0;
    }
  };

  std::size_t large_class() const noexcept { return table_.large_class(); }

  // Fast mode's common case, on as few instructions as the checks allow: a
  // block of at most one page (class 0), default alignment, reusing an open
  // slot from the thread's free list. nullptr = take the general path, which
  // handles everything else (fresh slots, refills, foreign caches) with the
  // same checks.
  [[gnu::always_inline]] void* allocate_small_fast(std::size_t size, std::size_t align,
                                                   AllocKind kind, bool zero,
                                                   bool& evicted_ahead) noexcept;

  // write_canaries() for a class-0 block of `size` bytes at `offset` in fast
  // mode (open from the slot start to the page end), specialised for those
  // bounds: the same bytes, with no span arithmetic and no call for a tail.
  [[gnu::always_inline]] void write_small_canaries(unsigned char* slot, std::size_t offset,
                                                   std::size_t size) const noexcept;

  // check_canaries()'s common answer for a class-0 block in fast mode
  // (open from the slot start to the page end, at most kFastCanaryBefore bytes
  // checked before the block): true when both canaries are intact.
  [[gnu::always_inline]] bool small_canaries_intact(const SlotMeta& m,
                                                    std::uintptr_t slot_start) const noexcept;

  // The free of a class-0 block in fast mode: false = take the general path
  // (another class, a large block, not a block start, a cache to switch);
  // every error it can see is reported exactly as the general path would.
  [[gnu::always_inline]] bool deallocate_small_fast(std::uintptr_t a, std::size_t size,
                                                    std::size_t align, AllocKind kind) noexcept;

  std::uintptr_t slot_address(std::uint32_t id, std::size_t cls) const noexcept {
    return table_.slot_address(id, cls);
  }
  std::uint32_t slot_of(std::uintptr_t a, std::size_t& cls) const noexcept {
    return table_.slot_of(a, cls);
  }

  ThreadCache& my_cache() noexcept;

  void switch_cache(ThreadCache& tc, std::uint64_t e) noexcept;

  // The thread's quarantine moves into the class FIFOs (oldest first, so the
  // order is kept) and its free slots onto the class free lists.
  void absorb_thread_cache(ThreadCache& tc) noexcept override;

  void fold_stats(ThreadCache& tc) noexcept;

  // Fast mode: a slot from the calling thread's free list (slots this thread
  // freed, back from its quarantine), refilled from the class, one lock per
  // kRefill slots, only when the thread allocates more than it frees.
  // `evicted_ahead`: allocate_small_fast() applied the evict-ahead rule for this
  // allocation already (one eviction per allocation, whichever path takes it).
  std::uint32_t take_cached_slot(std::size_t cls, bool evicted_ahead = false) noexcept;

  // Fast mode's quarantine is per thread: a freed slot waits in the freeing
  // thread's FIFO and comes back to that thread, so two threads never pass
  // slots, metadata lines or a lock between their cores. The budget
  // (quarantine_slots, and quarantine_bytes / fast_quarantine_bytes) is
  // shared evenly by the threads using the arena: one thread gets all of it.
  void quarantine_in_thread(ThreadCache& tc, std::uint32_t id, std::size_t cls) noexcept;

  // This thread's share of the bounds, recomputed only when the number of
  // threads changes (divisions stay off the free path). The slot bound also
  // counts the byte bound in one-page slots (the common case), so that the
  // evict-ahead rule in take_cached_slot() sees whichever bound applies.
  void share_bounds(ThreadCache& tc, std::uint64_t threads) noexcept;

  // The oldest slot of the thread's quarantine goes to its free list (past
  // kFreeCap, to the class's, where the resident bound applies).
  void evict_from_thread(ThreadCache& tc) noexcept;

  // Full mode, one-page slots: a slot opened ahead of time. Slots leave the
  // free list kReadyBatch at a time and are opened and committed together
  // (guard backend: two syscalls for the batch instead of one madvise and one
  // page fault each), so a malloc/free pair costs the one syscall that must
  // not wait, the MADV_GUARD_INSTALL at free. The batch has left the
  // quarantine already; only its oldest slots are open early.
  std::uint32_t take_ready_slot(std::size_t cls) noexcept;

  std::uint32_t take_slot(std::size_t cls) noexcept;

  // Free list of slots back from quarantine. In fast mode they keep their
  // (poisoned) pages; past kFastResidentPerClass bytes per class a batch of
  // them (half the bound) goes back to the kernel in a few syscalls,
  // so a burst of frees does not pin its peak RSS and a free list hovering
  // near the bound does not close and reopen a slot per operation.
  void push_free_locked(std::uint32_t id, std::size_t cls, ClassState& cs) noexcept;
  // push_free_locked() under the class lock; out of line, so that the free
  // paths that rarely take it stay small enough to inline.
  void push_free(std::uint32_t id, std::size_t cls) noexcept;

  // An open free slot if there is one; else, in fast mode, a batch of closed
  // ones is reopened together and the first returned; else a closed one.
  std::uint32_t pop_free_locked(std::size_t cls, ClassState& cs) noexcept;

  // Slots of `cls` that fast mode closes or reopens per batch: half the
  // resident bound, at most kSlotBatch.
  std::uint32_t slot_batch(std::size_t cls) const noexcept;

  // Fast mode on a backend that batches: opens the first `n` slots of
  // batches_[cls].ids as a whole in one syscall and marks their pages zero;
  // returns how many leading ones are open. Caller holds the class lock.
  std::size_t open_slots_ahead(std::size_t n, std::size_t cls) noexcept;

  // Fast mode: closes a batch of open free slots (resident bound exceeded).
  void close_free_batch_locked(std::size_t cls, ClassState& cs) noexcept;

  std::uint32_t take_slot_locked(std::size_t cls, ClassState& cs) noexcept;

  // A run of `len` free chunks, prepared for the backend (and published as
  // a large block's when `large`); kNoSlot when the reservation is full or
  // the kernel refuses to prepare it.
  std::uint32_t take_run(std::uint32_t len, bool large) noexcept;

  // Gives a large block's run back.
  void free_large_run(std::uint32_t id) noexcept;

  // A slot taken for a block that cannot be opened goes back where it came
  // from; the request is then served by the exhaustion policy.
  void* return_slot_and_fall_back(
      std::uint32_t id, std::size_t cls, std::size_t size, std::size_t align, bool zero,
      const char* why = "the kernel refused more guard pages (ENOMEM)") noexcept;

  // The limits on guarding, for refuse_at_limit().
  enum class GuardLimit : std::uint8_t { kMemory, kMappings };

  // A limit refused to open the slot `id` for this request: the slot goes
  // back and the exhaustion policy serves the request; under fallback the
  // rationing rate doubles, and the first refusal in the process writes the
  // one warning, naming the limit, the blocks guarded and the new rate
  // (arena_limits.h).
  void* refuse_at_limit(std::uint32_t id, std::size_t cls, std::size_t size, std::size_t align,
                        bool zero, GuardLimit limit) noexcept;

  // While rationing: a request not drawn to be guarded, served unguarded.
  void* serve_rationed_out(std::size_t size, std::size_t align, bool zero) noexcept;

  // A drawn allocation got a slot, or a slot was closed: the rate halves
  // while every limit is less than three quarters used.
  void ease_rationing_if_room() noexcept;

  // No guarded slot can serve the request: an unguarded block or nullptr, as
  // on_exhaustion says (core/fallback.h). `why` words the one-time warning.
  void* serve_by_exhaustion_policy(std::size_t size, std::size_t align, bool zero,
                                   const char* why) noexcept;

  // Takes access to the slot's open pages away (and returns them to the
  // kernel); if the kernel refuses, the pages stay open but are emptied.
  void close_slot(SlotMeta& m, std::uintptr_t slot_start) noexcept;

  std::size_t slot_quarantine_bytes(std::uint32_t id, std::size_t cls) const noexcept;

  void quarantine(std::uint32_t id, std::size_t cls) noexcept;

  void quarantine_locked(std::uint32_t id, std::size_t cls, ClassState& cs) noexcept;

  QuarantineBound quarantine_bound() const noexcept;

  // The budget is global; each class evicts its own oldest entries, so the
  // bound holds within one batch and no class lock is ever nested.
  void evict_over_bound_locked(std::size_t cls, ClassState& cs) noexcept;

  // Moves the oldest quarantined slot of `cls` to reuse. Caller holds cs.mu.
  void evict_one(std::size_t cls, ClassState& cs, bool count = true) noexcept;

  CanarySpan canaries_of(std::size_t open_begin, std::size_t offset, std::size_t s,
                         std::size_t open_end) const noexcept {
    return canary_span(open_begin, offset, s, open_end, page_, options_.mode == Mode::kFast);
  }

  void check_canaries(const SlotMeta& m, std::uintptr_t slot_start) noexcept {
    check_slot_canaries(m, slot_start, page_, options_.mode == Mode::kFast);
  }

  void write_canaries(std::uintptr_t slot_start, std::size_t open_begin, std::size_t offset,
                      std::size_t s, std::size_t open_end) noexcept {
    write_canaries_at(reinterpret_cast<unsigned char*>(slot_start),
                      canaries_of(open_begin, offset, s, open_end), offset, s);
  }

  FallbackAllocator fallback_alloc_;
  std::size_t page_ = 0;
  std::size_t chunk_bytes_ = 0;
  std::size_t max_class_ = 0;
  bool small_fast_path_ = false;  // fast mode without protect_below: see allocate_small_fast()
  std::uint32_t page_shift_ = 0;
  SlotMeta* meta_ = nullptr;
  std::size_t meta_bytes_ = 0;
  SlotBatch* batches_ = nullptr;  // one per class up to max_class_
  std::size_t batches_bytes() const noexcept {
    return os::page_ceil((max_class_ + 1) * sizeof(SlotBatch));
  }
  ChunkTable table_;
  ClassState classes_[kMaxClasses + 1];
  FallbackBlocks fallback_;
  LiveCounters live_;
  QuarantineCounters quarantined_;
  // Fast mode: threads whose cache belongs to this arena at this epoch.
  std::atomic<std::uint64_t> active_caches_{0};
  VmaBudget vmas_;  // mprotect backend only
  MemoryBudget budget_;
  GuardRationing rationing_;
};

}  // namespace
}  // namespace guardarena
