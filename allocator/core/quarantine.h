// The quarantine's bound and its accounting. Freed slots wait in FIFOs
// (SlotFifo: one per size class, or one per thread in fast mode) before
// reuse; the bound on slots and bytes is global to the arena. Each FIFO
// evicts its own oldest entries while the global counts exceed the bound, so
// the bound holds within one batch and no FIFO's lock is ever nested in
// another's. Fast mode's per-thread FIFOs share the bound evenly.
//
// Thread safety: QuarantineCounters is lock-free (relaxed atomics); the FIFO
// passed to evict_over_bound() is guarded by its owner.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "core/slot_list.h"

namespace guardarena {

struct QuarantineBound {
  std::uint64_t slots = 0;
  std::uint64_t bytes = 0;
};

// One thread's share of `whole` when `threads` (>= 1) threads share it. The
// slot bound also counts the byte bound in slots of `slot_bytes` (the common
// one-page slot), so that whichever bound is tighter shows in the slot count
// (fast mode evicts ahead by slot count, ThreadCache::kEvictAhead).
constexpr QuarantineBound share_of(QuarantineBound whole, std::uint64_t threads,
                                   std::uint64_t slot_bytes) noexcept {
  QuarantineBound b;
  b.bytes = whole.bytes / threads;
  b.slots = std::min<std::uint64_t>(whole.slots / threads, b.bytes / slot_bytes);
  return b;
}

class QuarantineCounters {
 public:
  // Deltas (fast mode folds a thread's in at once; they may be negative).
  void add(std::int64_t blocks, std::int64_t bytes) noexcept {
    blocks_.fetch_add(static_cast<std::uint64_t>(blocks), std::memory_order_relaxed);
    bytes_.fetch_add(static_cast<std::uint64_t>(bytes), std::memory_order_relaxed);
  }
  void remove(std::uint64_t blocks, std::uint64_t bytes) noexcept {
    blocks_.fetch_sub(blocks, std::memory_order_relaxed);
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  void reset() noexcept {
    blocks_ = 0;
    bytes_ = 0;
  }
  std::uint64_t blocks() const noexcept { return blocks_.load(std::memory_order_relaxed); }
  std::uint64_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }

  // Evicts the oldest entries of `fifo` while the counts, less what this
  // call evicted, exceed `bound`: bytes_of(id) is the quarantined size of
  // entry `id`, evict() takes the oldest entry off `fifo` and reuses it.
  // Returns how many entries it evicted (and uncounted).
  template <class BytesOf, class Evict>
  std::uint64_t evict_over_bound(const SlotFifo& fifo, QuarantineBound bound, BytesOf bytes_of,
                                 Evict evict) noexcept {
    const std::uint64_t blocks = this->blocks();
    const std::uint64_t bytes = this->bytes();
    std::uint64_t evicted = 0;
    std::uint64_t evicted_bytes = 0;
    while (!fifo.empty() &&
           (blocks - evicted > bound.slots || bytes - evicted_bytes > bound.bytes)) {
      evicted_bytes += bytes_of(fifo.head);
      ++evicted;
      evict();
    }
    if (evicted != 0) remove(evicted, evicted_bytes);
    return evicted;
  }

 private:
  std::atomic<std::uint64_t> blocks_{0}, bytes_{0};
};

}  // namespace guardarena
