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
inline void ArenaImpl<Backend>::push_free_locked(std::uint32_t id, std::size_t cls,
                                                 ClassState& cs) noexcept {
  SlotMeta& m = meta_[id];
  std::uint64_t open = m.open_end - m.open_begin;
  if (open != 0 && cs.free_resident + open > kFastResidentPerClass) {
    close_slot(m, slot_address(id, cls));
    open = 0;
  }
  cs.free_resident += open;
  cs.free.push(meta_, id);
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::pop_free_locked(ClassState& cs) noexcept {
  const std::uint32_t id = cs.free.pop(meta_);
  SlotMeta& m = meta_[id];
  cs.free_resident -= m.open_end - m.open_begin;
  return id;
}

template <os::GuardBackend Backend>
inline std::uint32_t ArenaImpl<Backend>::take_slot_locked(std::size_t cls,
                                                          ClassState& cs) noexcept {
  if (!cs.free.empty()) return pop_free_locked(cs);
  if (cs.cur_chunk == kNoSlot || cs.next_index == cs.slots_in_chunk) {
    std::uint32_t c = take_run(1, false);
    if (c == kNoSlot) {
      // Address space is used up: reuse the oldest quarantined slot rather
      // than fail while the quarantine holds slots of this class.
      if (cs.quarantine.empty()) return kNoSlot;
      evict_one(cls, cs);
      return pop_free_locked(cs);
    }
    table_.publish_class(c, cls);
    cs.cur_chunk = c;
    cs.next_index = 0;
    cs.slots_in_chunk =
        static_cast<std::uint32_t>(SlotGeometry{page_, class_pages(cls)}.slots_in(chunk_bytes_));
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
    ClassState& cs = classes_[cls];
    std::lock_guard<ClassLock> g(cs.mu);
    push_free_locked(id, cls, cs);
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
