// Fast mode's per-thread side of ArenaImpl: the shortest allocation and free
// paths (a one-page block of default alignment, reused from the calling
// thread's cache with no lock and no syscall), the thread cache's refills,
// its quarantine and evictions, and the hand-back into the arena. Internal to
// arena.cpp.
#pragma once

#include "core/arena_impl.h"

// An unnamed namespace: arena.cpp is the one file that includes this, and
// internal linkage lets the compiler inline paths called from one place.
namespace guardarena {
namespace {

template <os::GuardBackend Backend>
[[gnu::always_inline]] inline void* ArenaImpl<Backend>::allocate_small_fast(
    std::size_t size, std::size_t align, AllocKind kind, bool zero, bool& evicted_ahead) noexcept {
  ThreadCache& tc = t_cache;
  // The epoch alone also names the owner (see ThreadCache).
  if (tc.epoch != epoch_.load(std::memory_order_relaxed)) [[unlikely]]
    return nullptr;
  // The evict-ahead rule of take_cached_slot() (ThreadCache::kEvictAhead),
  // first, so that the slot taken can be one it evicts. If this path then
  // gives up, the general one is told not to evict a second time.
  if (tc.free[0].count < ThreadCache::kEvictAhead && !tc.quarantine.empty() &&
      tc.quarantine.count + ThreadCache::kEvictAhead > tc.slot_bound) {
    evict_from_thread(tc);
    evicted_ahead = true;
  }
  if (tc.free[0].empty()) [[unlikely]]
    return nullptr;
  const std::uint32_t id = tc.free[0].head;
  SlotMeta& m = meta_[id];
  // A one-page slot is open as a whole or not at all (closed past the
  // resident bound, or never used).
  if (m.open_end != page_) [[unlikely]]
    return nullptr;
  tc.free[0].pop(meta_);
  // An open slot was allocated before or opened ahead (which records a
  // block at its start), so the recorded block locates the slot (and its
  // poison) without the slot arithmetic.
  const std::uintptr_t slot_start = m.block - m.offset;
  if (m.pages_zero == 0) [[likely]]
    check_slot_poison(m, slot_start);
  const std::size_t offset = (page_ - size) & ~(align - 1);
  auto* p = reinterpret_cast<unsigned char*>(slot_start + offset);
  write_small_canaries(reinterpret_cast<unsigned char*>(slot_start), offset, size);
  if (zero) std::memset(p, 0, size);
  m.alloc_kind = static_cast<std::uint8_t>(kind);
  m.align_log2 = static_cast<std::uint8_t>(std::countr_zero(align));
  m.pages_zero = 0;
  m.size = size;
  m.offset = offset;
  m.block = reinterpret_cast<std::uintptr_t>(p);
  m.alloc_stack = capture_stack_id();
  m.free_stack.store(0, std::memory_order_relaxed);
  m.alloc_tid = os::current_tid();
  m.free_tid.store(0, std::memory_order_relaxed);
  m.state.store(SlotState::kLive, std::memory_order_release);
  ++tc.live_blocks;
  tc.live_bytes += static_cast<std::int64_t>(size);
  ++tc.allocations;
  return p;
}

template <os::GuardBackend Backend>
[[gnu::always_inline]] inline void ArenaImpl<Backend>::write_small_canaries(
    unsigned char* slot, std::size_t offset, std::size_t size) const noexcept {
  // After the block: fewer than kFastPathAlign bytes up to the page end, in
  // one 16-byte store ending there. It may cover the block's last bytes,
  // which hold nothing yet (calloc zeroes them afterwards).
  static_assert(kFastPathAlign <= sizeof(Bytes16));
  if (offset + size != page_) fill16(slot + page_ - sizeof(Bytes16), kCanaryByte);
  if (offset >= kFastCanaryBefore) {
    fill_bytes(slot + offset - kFastCanaryBefore, kFastCanaryBefore, kCanaryByte);
  } else if (offset != 0) {
    std::memset(slot, kCanaryByte, offset);
  }
}

template <os::GuardBackend Backend>
[[gnu::always_inline]] inline bool ArenaImpl<Backend>::small_canaries_intact(
    const SlotMeta& m, std::uintptr_t slot_start) const noexcept {
  const std::size_t s = m.size == 0 ? 1 : m.size;
  const std::size_t before = m.offset < kFastCanaryBefore ? m.offset : kFastCanaryBefore;
  // Under kFastPathAlign bytes up to the page end, unless the general path
  // placed the block for a larger alignment.
  static_assert(kFastPathAlign <= sizeof(Bytes16));
  const std::size_t tail = page_ - m.offset - s;
  auto* block = reinterpret_cast<const unsigned char*>(slot_start + m.offset);
  if (before != 0 && !all_bytes_are(block - before, before, kCanaryByte)) return false;
  if (tail == 0) return true;
  if (tail <= sizeof(Bytes16))
    return ends_with_bytes(reinterpret_cast<const unsigned char*>(slot_start + page_), tail,
                           kCanaryByte);
  return all_bytes_are(block + s, tail, kCanaryByte);
}

template <os::GuardBackend Backend>
[[gnu::always_inline]] inline bool ArenaImpl<Backend>::deallocate_small_fast(
    std::uintptr_t a, std::size_t size, std::size_t align, AllocKind kind) noexcept {
  const std::uintptr_t rel = a - base_;
  const std::uint32_t chunk = table_.chunk_at(rel);
  const ChunkInfo& ci = table_[chunk];
  // Class-0 slots take pages 1, 3, 5, ... of their chunk.
  const std::uintptr_t page_in_chunk = (rel & (chunk_bytes_ - 1)) >> page_shift_;
  const std::uintptr_t index = page_in_chunk >> 1;
  if (ci.kind.load(std::memory_order_acquire) != ChunkKind::kClass || ci.class_index != 0 ||
      (page_in_chunk & 1) == 0 || index >= table_.slots_per_chunk(0)) [[unlikely]]
    return false;
  ThreadCache& tc = t_cache;
  if (tc.epoch != epoch_.load(std::memory_order_relaxed)) [[unlikely]]
    return false;
  const std::uint32_t id = table_.slot_id(chunk, static_cast<std::uint32_t>(index));
  SlotMeta& m = meta_[id];
  const std::uintptr_t block = m.block;
  SlotState expected = SlotState::kLive;
  if (a != block) [[unlikely]]
    return false;  // not a block start: the general path works out what it is
  const std::uintptr_t slot_start = block - m.offset;
  // Reported here, not by a second compare-exchange on the general path:
  // the slot could be reused in between, and that one would then succeed.
  if (!m.state.compare_exchange_strong(expected, SlotState::kFreeing, std::memory_order_acq_rel))
      [[unlikely]]
    report_failed_free(m, a, block, slot_start, kind);
  // The general checks only when a quick look finds something to report
  // (or a pmr free, whose alignment is checked too).
  if (m.alloc_kind != static_cast<std::uint8_t>(kind) || (size != 0 && size != m.size) ||
      kind == AllocKind::kPmr) [[unlikely]]
    check_free_matches(m, a, slot_start, size, align, kind);
  if (!small_canaries_intact(m, slot_start)) [[unlikely]]
    check_canaries(m, slot_start);
  m.free_stack.store(capture_stack_id(), std::memory_order_relaxed);
  m.free_tid.store(os::current_tid(), std::memory_order_release);
  --tc.live_blocks;
  tc.live_bytes -= static_cast<std::int64_t>(m.size);
  fill_bytes(reinterpret_cast<unsigned char*>(block), m.size == 0 ? 1 : m.size, kPoisonByte);
  m.state.store(SlotState::kQuarantined, std::memory_order_release);  // poison complete
  quarantine_in_thread(tc, id, 0);
  return true;
}

template <os::GuardBackend Backend>
inline ThreadCache& ArenaImpl<Backend>::my_cache() noexcept {
  ThreadCache& tc = t_cache;
  std::uint64_t e = epoch_.load(std::memory_order_relaxed);
  if (tc.epoch != e) [[unlikely]] {
    switch_cache(tc, e);
  }
  return tc;
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::switch_cache(ThreadCache& tc, std::uint64_t e) noexcept {
  attach(tc, this, e);
  active_caches_.fetch_add(1, std::memory_order_relaxed);
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::absorb_thread_cache(ThreadCache& tc) noexcept {
  // First: the global counts the eviction below is judged by, with the
  // thread's quarantine in them; its slots stay quarantined, in their classes.
  fold_stats(tc);
  while (!tc.quarantine.empty()) {
    std::uint32_t id = tc.quarantine.pop(meta_);
    std::size_t cls = table_[table_.chunk_of_id(id)].class_index;
    ClassState& cs = classes_[cls];
    std::lock_guard<ClassLock> g(cs.mu);
    cs.quarantine.push(meta_, id);
  }
  tc.q_bytes = tc.folded_q_count = tc.folded_q_bytes = 0;
  active_caches_.fetch_sub(1, std::memory_order_relaxed);
  for (std::size_t c = 0; c <= max_class_ && c < ThreadCache::kClasses; ++c) {
    ClassState& cs = classes_[c];
    std::lock_guard<ClassLock> g(cs.mu);
    while (!tc.free[c].empty()) push_free_locked(tc.free[c].pop(meta_), c, cs);
    evict_over_bound_locked(c, cs);
  }
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::fold_stats(ThreadCache& tc) noexcept {
  if (tc.quarantine.count != tc.folded_q_count || tc.q_bytes != tc.folded_q_bytes) {
    quarantined_.add(static_cast<std::int64_t>(tc.quarantine.count - tc.folded_q_count),
                     static_cast<std::int64_t>(tc.q_bytes - tc.folded_q_bytes));
    tc.folded_q_count = tc.quarantine.count;
    tc.folded_q_bytes = tc.q_bytes;
  }
  if (tc.allocations == 0 && tc.live_blocks == 0 && tc.live_bytes == 0) return;
  live_.add(tc.live_blocks, tc.live_bytes, tc.allocations);
  tc.live_blocks = tc.live_bytes = 0;
  tc.allocations = 0;
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::take_cached_slot(std::size_t cls,
                                                          bool evicted_ahead) noexcept {
  ThreadCache& tc = my_cache();
  // The evict-ahead rule: once the quarantine is within kEvictAhead of its
  // bound, it gives up its oldest slot a little early.
  if (!evicted_ahead && tc.free[cls].count < ThreadCache::kEvictAhead && !tc.quarantine.empty() &&
      tc.quarantine.count + ThreadCache::kEvictAhead > tc.slot_bound)
    evict_from_thread(tc);
  if (tc.free[cls].empty()) [[unlikely]] {
    {
      ClassState& cs = classes_[cls];
      std::lock_guard<ClassLock> g(cs.mu);
      while (tc.free[cls].count < ThreadCache::kRefill) {
        std::uint32_t id = take_slot_locked(cls, cs);
        if (id == kNoSlot) break;
        tc.free[cls].push(meta_, id);
      }
    }
    fold_stats(tc);
    if (tc.free[cls].empty()) return kNoSlot;
  }
  return tc.free[cls].pop(meta_);
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::quarantine_in_thread(ThreadCache& tc, std::uint32_t id,
                                                     std::size_t cls) noexcept {
  tc.quarantine.push(meta_, id);
  std::uint64_t bytes = class_pages(cls) * page_;
  tc.q_bytes += bytes;
  std::uint64_t threads =
      std::max<std::uint64_t>(1, active_caches_.load(std::memory_order_relaxed));
  if (threads != tc.bound_threads) [[unlikely]]
    share_bounds(tc, threads);
  while (!tc.quarantine.empty() &&
         (tc.quarantine.count > tc.slot_bound || tc.q_bytes > tc.byte_bound))
    evict_from_thread(tc);
  // Fast mode's reuse opens and closes nothing, so a free is where it sees
  // guarded memory come back under the budget and lets the rate come down.
  if (rationing_.active()) [[unlikely]]
    ease_rationing_if_room();
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::share_bounds(ThreadCache& tc, std::uint64_t threads) noexcept {
  const QuarantineBound share = share_of(quarantine_bound(), threads, page_);
  tc.bound_threads = threads;
  tc.byte_bound = share.bytes;
  tc.slot_bound = share.slots;
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::evict_from_thread(ThreadCache& tc) noexcept {
  const std::uint32_t id = tc.quarantine.pop(meta_);
  SlotMeta& m = meta_[id];
  // The next eviction (usually at the next free) starts from that entry's
  // metadata, cold since it was quarantined.
  if (!tc.quarantine.empty()) __builtin_prefetch(&meta_[tc.quarantine.head]);
  std::size_t cls = table_[table_.chunk_of_id(id)].class_index;
  std::uint64_t bytes = class_pages(cls) * page_;
  tc.q_bytes -= bytes;
  m.state.store(SlotState::kAvailable, std::memory_order_release);
  if (m.open_end > m.open_begin) {
    // Reused soon (often by the very next allocation: see ThreadCache::kEvictAhead);
    // its poison check then reads the old block, which left the cache and
    // the TLB during the quarantine: start those loads now (a prefetch never
    // faults).
    std::uintptr_t block = m.block;
    __builtin_prefetch(reinterpret_cast<const void*>(block));
    __builtin_prefetch(reinterpret_cast<const void*>(block - kFastCanaryBefore));
  }
  if (tc.free[cls].count < ThreadCache::kFreeCap) [[likely]] {
    tc.free[cls].push(meta_, id);
    return;
  }
  push_free(id, cls);
}

template <os::GuardBackend Backend>
[[gnu::noinline]] void ArenaImpl<Backend>::push_free(std::uint32_t id, std::size_t cls) noexcept {
  ClassState& cs = classes_[cls];
  std::lock_guard<ClassLock> g(cs.mu);
  push_free_locked(id, cls, cs);
}

}  // namespace
}  // namespace guardarena
