// Where ArenaImpl's slots come from and go back to: the class free lists and
// bump allocation in chunks, full mode's batches of slots opened ahead, runs
// of chunks for large blocks, the class quarantines under the global bound,
// closing slots, and the exhaustion policy when none of them can serve.
// Internal to arena.cpp.
#pragma once

#include "core/arena_impl.h"

// An unnamed namespace: arena.cpp is the one file that includes this, and
// internal linkage lets the compiler inline paths called from one place.
namespace guardarena {
namespace {

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::take_ready_slot(std::size_t cls) noexcept {
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
  // Open only as many as the memory budget takes; the first slot, if left
  // closed, meets the budget again in allocate() and its exhaustion policy.
  const std::uint64_t per_slot = usable + kSlotRecordBytes;
  std::size_t charged = budget_.try_charge(n * per_slot) ? n : 0;
  while (charged < n && budget_.try_charge(per_slot)) ++charged;
  std::size_t opened = 0;
  if constexpr (Backend::kBatchesOpen) opened = Backend::open_many(starts, usable, charged);
  if (opened != charged) budget_.uncharge((charged - opened) * per_slot);
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

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::take_slot(std::size_t cls) noexcept {
  ClassState& cs = classes_[cls];
  std::lock_guard<ClassLock> g(cs.mu);
  return take_slot_locked(cls, cs);
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::slot_batch(std::size_t cls) const noexcept {
  const std::uint64_t n = kFastResidentPerClass / 2 / (class_pages(cls) * page_);
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(n, 1, kSlotBatch));
}

template <os::GuardBackend Backend>
inline std::size_t ArenaImpl<Backend>::open_slots_ahead(std::size_t n, std::size_t cls) noexcept {
  if constexpr (Backend::kBatchesOpen) {
    SlotBatch& b = batches_[cls];
    const std::size_t usable = class_pages(cls) * page_;
    // Charged like any opened slot (pages and record), whether or not the
    // pages are touched yet: close_slot and close_free_batch_locked uncharge
    // every slot they close. Only as many as the budget takes are opened.
    const std::uint64_t per_slot = usable + kSlotRecordBytes;
    std::size_t charged = budget_.try_charge(n * per_slot) ? n : 0;
    while (charged < n && budget_.try_charge(per_slot)) ++charged;
    for (std::size_t i = 0; i < charged; ++i)
      b.ranges[i] = os::Range{reinterpret_cast<void*>(slot_address(b.ids[i], cls)), usable};
    const std::size_t opened = Backend::open_ranges(b.ranges, charged);
    if (opened != charged) budget_.uncharge((charged - opened) * per_slot);
    for (std::size_t i = 0; i < opened; ++i) {
      SlotMeta& m = meta_[b.ids[i]];
      // The fast paths locate an open slot by its last block; a fresh slot
      // gets a block at its start so that they can.
      if (m.block == 0) m.block = reinterpret_cast<std::uintptr_t>(b.ranges[i].base);
      m.open_begin = 0;
      m.open_end = usable;
      m.pages_zero = 1;
    }
    return opened;
  } else {
    (void)n, (void)cls;
    return 0;
  }
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::close_free_batch_locked(std::size_t cls, ClassState& cs) noexcept {
  std::uint32_t* ids = batches_[cls].ids;
  std::size_t n = 0;
  for (const std::uint32_t batch = slot_batch(cls); n < batch && !cs.free_open.empty(); ++n) {
    ids[n] = cs.free_open.pop(meta_);
    cs.free_resident -= meta_[ids[n]].open_end - meta_[ids[n]].open_begin;
  }
  std::size_t closed = 0;
  if constexpr (Backend::kBatchesOpen) {
    os::Range* r = batches_[cls].ranges;
    for (std::size_t i = 0; i < n; ++i) {
      const SlotMeta& m = meta_[ids[i]];
      r[i] = os::Range{reinterpret_cast<void*>(slot_address(ids[i], cls) + m.open_begin),
                       m.open_end - m.open_begin};
    }
    closed = Backend::close_ranges(r, n);
    std::uint64_t uncharged = 0;
    for (std::size_t i = 0; i < closed; ++i) {
      SlotMeta& m = meta_[ids[i]];
      uncharged += m.open_end - m.open_begin + kSlotRecordBytes;
      m.open_begin = m.open_end = 0;
    }
    budget_.uncharge(uncharged);
    if (closed != 0 && rationing_.active()) [[unlikely]]
      ease_rationing_if_room();
  }
  // What the batch could not close (ENOMEM, or a backend that closes one
  // slot per call) is closed one by one; a slot the kernel keeps open stays
  // on the open list, emptied.
  for (std::size_t i = closed; i < n; ++i) close_slot(meta_[ids[i]], slot_address(ids[i], cls));
  for (std::size_t i = n; i-- > 0;) {
    SlotMeta& m = meta_[ids[i]];
    if (m.open_end > m.open_begin) {
      cs.free_resident += m.open_end - m.open_begin;
      cs.free_open.push(meta_, ids[i]);
    } else {
      cs.free_closed.push(meta_, ids[i]);
    }
  }
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::push_free_locked(std::uint32_t id, std::size_t cls,
                                                 ClassState& cs) noexcept {
  const SlotMeta& m = meta_[id];
  const std::uint64_t open = m.open_end - m.open_begin;
  if (open == 0) {
    cs.free_closed.push(meta_, id);
    return;
  }
  cs.free_open.push(meta_, id);
  cs.free_resident += open;
  if (cs.free_resident > kFastResidentPerClass) close_free_batch_locked(cls, cs);
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::pop_free_locked(std::size_t cls, ClassState& cs) noexcept {
  if (!cs.free_open.empty()) {
    const std::uint32_t id = cs.free_open.pop(meta_);
    cs.free_resident -= meta_[id].open_end - meta_[id].open_begin;
    return id;
  }
  if (!Backend::kBatchesOpen || options_.mode != Mode::kFast) return cs.free_closed.pop(meta_);
  std::uint32_t* ids = batches_[cls].ids;
  std::size_t n = 0;
  for (const std::uint32_t batch = slot_batch(cls); n < batch && !cs.free_closed.empty(); ++n)
    ids[n] = cs.free_closed.pop(meta_);
  const std::size_t opened = open_slots_ahead(n, cls);
  for (std::size_t i = n; i-- > 1;) {
    if (i < opened) {
      cs.free_resident += class_pages(cls) * page_;
      cs.free_open.push(meta_, ids[i]);
    } else {
      cs.free_closed.push(meta_, ids[i]);
    }
  }
  return ids[0];
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::take_slot_locked(std::size_t cls,
                                                          ClassState& cs) noexcept {
  if (!cs.free_open.empty() || !cs.free_closed.empty()) return pop_free_locked(cls, cs);
  if (cs.cur_chunk == kNoSlot || cs.next_index == cs.slots_in_chunk) {
    std::uint32_t c = take_run(1, false);
    if (c == kNoSlot) {
      // Address space is used up: reuse the oldest quarantined slot rather
      // than fail while the quarantine holds slots of this class.
      if (cs.quarantine.empty()) return kNoSlot;
      evict_one(cls, cs);
      return pop_free_locked(cls, cs);
    }
    table_.publish_class(c, cls);
    cs.cur_chunk = c;
    cs.next_index = cs.opened_until = 0;
    cs.slots_in_chunk =
        static_cast<std::uint32_t>(SlotGeometry{page_, class_pages(cls)}.slots_in(chunk_bytes_));
  }
  // Fast mode keeps a slot open for its life: fresh ones are opened a batch
  // at a time (nothing is committed until touched), so a growing heap costs
  // a few syscalls per batch, not one per slot.
  if (Backend::kBatchesOpen && options_.mode == Mode::kFast && cs.next_index >= cs.opened_until) {
    // Fresh pages cost nothing until touched, but count against the memory
    // budget once open: a batch as large as the one the class closes.
    const auto n = std::min(slot_batch(cls), cs.slots_in_chunk - cs.next_index);
    for (std::uint32_t i = 0; i < n; ++i)
      batches_[cls].ids[i] = table_.slot_id(cs.cur_chunk, cs.next_index + i);
    cs.opened_until = cs.next_index + static_cast<std::uint32_t>(open_slots_ahead(n, cls));
  }
  return table_.slot_id(cs.cur_chunk, cs.next_index++);
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::take_run(std::uint32_t len, bool large) noexcept {
  const std::uint32_t start = table_.take_run(len, large);
  if (start == kNoSlot) return kNoSlot;
  for (std::uint32_t c = start; c < start + len; ++c) {
    if (table_[c].prepared) continue;
    // prepare_chunk fails only on ENOMEM (page tables, commit limit).
    if (!Backend::prepare_chunk(reinterpret_cast<void*>(table_.chunk_base(c)), chunk_bytes_)) {
      table_.free_run(start, len);
      return kNoSlot;
    }
    table_[c].prepared = 1;
  }
  if (large) table_.publish_large(start, len);
  return start;
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::free_large_run(std::uint32_t id) noexcept {
  const std::uint32_t head = table_.chunk_of_id(id);
  table_.free_run(head, table_[head].run_len);
}

template <os::GuardBackend Backend>
inline void* ArenaImpl<Backend>::return_slot_and_fall_back(std::uint32_t id, std::size_t cls,
                                                           std::size_t size, std::size_t align,
                                                           bool zero, const char* why) noexcept {
  if (cls == large_class()) {
    free_large_run(id);
  } else {
    push_free(id, cls);
  }
  return serve_by_exhaustion_policy(size, align, zero, why);
}

template <os::GuardBackend Backend>
inline void* ArenaImpl<Backend>::serve_by_exhaustion_policy(std::size_t size, std::size_t align,
                                                            bool zero, const char* why) noexcept {
  return fallback_.serve(size, align, zero, why);
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::close_slot(SlotMeta& m, std::uintptr_t slot_start) noexcept {
  if (m.open_end <= m.open_begin) return;
  bool ok =
      Backend::close(reinterpret_cast<void*>(slot_start + m.open_begin), m.open_end - m.open_begin);
  if (!ok) {
    // Could not take access away (ENOMEM on page tables): the block stays
    // readable but its contents are dropped so stale reads see zeros.
    os::discard(reinterpret_cast<void*>(slot_start + m.open_begin), m.open_end - m.open_begin);
    m.pages_zero = 1;
    return;
  }
  budget_.uncharge(m.open_end - m.open_begin + kSlotRecordBytes);
  m.open_begin = m.open_end = 0;
  if constexpr (Backend::kCountsVmas) vmas_.closed();
  if (rationing_.active()) [[unlikely]]
    ease_rationing_if_room();
}

template <os::GuardBackend Backend>
inline std::size_t ArenaImpl<Backend>::slot_quarantine_bytes(std::uint32_t id,
                                                             std::size_t cls) const noexcept {
  if (cls == large_class())
    return std::size_t{table_[table_.chunk_of_id(id)].run_len} * chunk_bytes_;
  return class_pages(cls) * page_;
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::quarantine(std::uint32_t id, std::size_t cls) noexcept {
  ClassState& cs = classes_[cls];
  std::lock_guard<ClassLock> g(cs.mu);
  quarantine_locked(id, cls, cs);
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::quarantine_locked(std::uint32_t id, std::size_t cls,
                                                  ClassState& cs) noexcept {
  cs.quarantine.push(meta_, id);
  quarantined_.add(1, static_cast<std::int64_t>(slot_quarantine_bytes(id, cls)));
  evict_over_bound_locked(cls, cs);
}

template <os::GuardBackend Backend>
inline QuarantineBound ArenaImpl<Backend>::quarantine_bound() const noexcept {
  QuarantineBound b{options_.quarantine_slots, options_.quarantine_bytes};
  if (options_.mode == Mode::kFast) b.bytes = std::min(b.bytes, options_.fast_quarantine_bytes);
  return b;
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::evict_over_bound_locked(std::size_t cls, ClassState& cs) noexcept {
  quarantined_.evict_over_bound(
      cs.quarantine, quarantine_bound(),
      [this, cls](std::uint32_t id) { return slot_quarantine_bytes(id, cls); },
      [this, cls, &cs] { evict_one(cls, cs, false); });
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::evict_one(std::size_t cls, ClassState& cs, bool count) noexcept {
  const std::uint32_t id = cs.quarantine.pop(meta_);
  SlotMeta& m = meta_[id];
  if (count) {
    quarantined_.remove(1, slot_quarantine_bytes(id, cls));
  }
  m.state.store(SlotState::kAvailable, std::memory_order_release);
  if (cls == large_class()) {
    free_large_run(id);
    return;
  }
  push_free_locked(id, cls, cs);
}

}  // namespace
}  // namespace guardarena
