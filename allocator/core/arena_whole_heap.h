// ArenaImpl's operations over the whole heap: releasing it in one step,
// flushing the quarantines, walking every slot (live blocks, the heap check),
// locking everything around fork, and the statistics. Internal to arena.cpp.
#pragma once

#include "core/arena_impl.h"

// An unnamed namespace: arena.cpp is the one file that includes this, and
// internal linkage lets the compiler inline paths called from one place.
namespace guardarena {
namespace {

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::release_all() noexcept {
  fallback_.release_all();
  lock_all();
  // One mmap(MAP_FIXED) over the whole span: every block becomes
  // inaccessible and every page goes back, whatever the backend.
  GUARDARENA_CHECK(os::replace_with_inaccessible(reinterpret_cast<void*>(base_), span_),
                   "release: cannot reset the reservation");
  os::discard(meta_, meta_bytes_);
  table_.retire_used_locked();
  for (std::size_t c = 0; c <= large_class(); ++c) classes_[c].reset();
  if constexpr (Backend::kCountsVmas) vmas_.close_all();
  budget_.uncharge_all();
  rationing_.reset();
  // Slot ids cached by any thread are meaningless now.
  epoch_.store(g_next_epoch.fetch_add(1), std::memory_order_release);
  live_.reset();
  quarantined_.reset();
  active_caches_ = 0;  // every cache is stale now; each re-registers
  fallback_.reset_counters();
  unlock_all();
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::flush_quarantine() noexcept {
  if (t_cache.owner == this && t_cache.epoch == epoch()) {
    while (!t_cache.quarantine.empty()) evict_from_thread(t_cache);
    fold_stats(t_cache);
  }
  for (std::size_t c = 0; c <= large_class(); ++c) {
    ClassState& cs = classes_[c];
    std::lock_guard<ClassLock> g(cs.mu);
    while (!cs.quarantine.empty()) evict_one(c, cs);
  }
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::for_each_live(void (*fn)(const BlockInfo&, void*),
                                              void* ctx) const noexcept {
  for_each_slot([&](const SlotMeta& m, std::uintptr_t slot_start, std::size_t) {
    if (m.state.load(std::memory_order_acquire) != SlotState::kLive) return;
    BlockInfo b;
    fill_block(b, m, slot_start);
    fn(b, ctx);
  });
}

template <os::GuardBackend Backend>
inline std::size_t ArenaImpl<Backend>::check_heap(void (*fn)(const Finding&, void*),
                                                  void* ctx) const noexcept {
  const bool fast = options_.mode == Mode::kFast;
  std::size_t damaged = 0;
  for_each_slot([&](const SlotMeta& m, std::uintptr_t slot_start, std::size_t cls) {
    const SlotState st = m.state.load(std::memory_order_acquire);
    const std::uintptr_t block = m.block;
    Finding f;
    bool found = false;
    if (st == SlotState::kLive) {
      found = find_canary_finding(m, slot_start, page_, fast, f);
    } else if (st == SlotState::kQuarantined && fast && cls != large_class()) {
      // Fast mode keeps a quarantined block open and poisoned; large
      // blocks are closed like full mode's.
      found = find_poison_finding(m, slot_start, f);
    }
    // Other threads may still allocate and free (at exit, threads that were
    // not joined): a slot that changed hands while it was read proves
    // nothing. Its state or block differs afterwards unless it went round
    // the whole quarantine in between.
    // The fence keeps the reads above before the state's second load (a
    // seqlock reader's); TSan has no model of fences and rejects them.
#if !defined(__SANITIZE_THREAD__)
    std::atomic_thread_fence(std::memory_order_acquire);
#endif
    if (found && m.state.load(std::memory_order_acquire) == st && m.block == block) {
      ++damaged;
      fn(f, ctx);
    }
  });
  return damaged;
}

template <os::GuardBackend Backend>
template <class F>
inline void ArenaImpl<Backend>::for_each_slot(F&& f) const noexcept {
  std::uint32_t used = table_.used();
  for (std::uint32_t c = 0; c < used; ++c) {
    ChunkKind k = table_[c].kind.load(std::memory_order_acquire);
    std::size_t slots = 0;
    std::size_t cls = 0;
    if (k == ChunkKind::kClass) {
      cls = table_[c].class_index;
      slots = SlotGeometry{page_, class_pages(cls)}.slots_in(chunk_bytes_);
    } else if (k == ChunkKind::kLarge && table_[c].head == c) {
      cls = large_class();
      slots = 1;
    }
    for (std::size_t i = 0; i < slots; ++i) {
      std::uint32_t id = table_.slot_id(c, static_cast<std::uint32_t>(i));
      f(meta_[id], slot_address(id, cls), cls);
    }
  }
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::lock_all() noexcept {
  handback_lock().lock();
  for (std::size_t c = 0; c <= large_class(); ++c) classes_[c].mu.lock();
  table_.lock();
  fallback_.lock();
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::unlock_all() noexcept {
  fallback_.unlock();
  table_.unlock();
  for (std::size_t c = large_class() + 1; c-- > 0;) classes_[c].mu.unlock();
  handback_lock().unlock();
}

template <os::GuardBackend Backend>
inline ArenaStats ArenaImpl<Backend>::stats() const noexcept {
  // The calling thread's deltas are folded in; other threads' fast-mode
  // deltas arrive at their next refill, flush or exit.
  ThreadCache& tc = t_cache;
  if (tc.owner == this && tc.epoch == epoch()) const_cast<ArenaImpl*>(this)->fold_stats(tc);
  ArenaStats s;
  s.live_blocks = live_.blocks();
  s.live_bytes = live_.bytes();
  s.peak_live_blocks = live_.peak_blocks();
  s.peak_live_bytes = live_.peak_bytes();
  s.guarded_allocations = live_.allocations();
  s.fallback_allocations = fallback_.served();
  s.fallback_live = fallback_.live();
  s.failed_allocations = fallback_.failed();
  s.quarantined_blocks = quarantined_.blocks();
  s.quarantined_bytes = quarantined_.bytes();
  if constexpr (Backend::kCountsVmas) s.vmas_in_use = 2 * static_cast<std::uint64_t>(vmas_.open());
  s.reserved_bytes = span_;
  s.syscalls = os::syscall_count();
  s.backend = Backend::kName;
  s.memory_budget = budget_.limit();
  s.memory_budget_source = budget_source_name(budget_.source());
  s.guarded_resident_bytes = MemoryBudget::process_resident();
  s.peak_guarded_resident_bytes = MemoryBudget::process_peak();
  s.unguarded_at_limit = rationing_.unguarded();
  s.guard_sample_rate = rationing_.rate();
  return s;
}

}  // namespace
}  // namespace guardarena
