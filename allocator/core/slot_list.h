// Intrusive lists of slots, linked through SlotMeta::next in the arena's
// out-of-band metadata array: no memory of their own, O(1) push and pop.
// A SlotFifo gives slots back oldest first (quarantines, and the thread
// caches' free lists: the slot reused next was evicted, and prefetched,
// several operations ago); a SlotStack newest first (a class's free list).
//
// Not thread-safe: each list belongs to one thread or is guarded by the
// lock of the class that owns it.
#pragma once

#include <cstdint>

#include "core/metadata.h"

namespace guardarena {

struct SlotFifo {
  std::uint32_t head = 0;  // valid only while count != 0
  std::uint32_t tail = 0;
  std::uint32_t count = 0;

  bool empty() const noexcept { return count == 0; }
  void push(SlotMeta* meta, std::uint32_t id) noexcept {
    meta[id].next = kNoSlot;
    if (count == 0) {
      head = id;
    } else {
      meta[tail].next = id;
    }
    tail = id;
    ++count;
  }
  // Precondition: !empty().
  std::uint32_t pop(const SlotMeta* meta) noexcept {
    const std::uint32_t id = head;
    head = meta[id].next;
    --count;
    return id;
  }
  void clear() noexcept { count = 0; }
};

struct SlotStack {
  std::uint32_t head = kNoSlot;

  bool empty() const noexcept { return head == kNoSlot; }
  void push(SlotMeta* meta, std::uint32_t id) noexcept {
    meta[id].next = head;
    head = id;
  }
  // Precondition: !empty().
  std::uint32_t pop(const SlotMeta* meta) noexcept {
    const std::uint32_t id = head;
    head = meta[id].next;
    return id;
  }
  void clear() noexcept { head = kNoSlot; }
};

}  // namespace guardarena
