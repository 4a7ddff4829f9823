// The arena's live-block counters: live blocks and bytes, their peaks and
// the number of guarded allocations. Fast mode adds each thread's deltas
// late (at refills, flushes and thread exit), so a free on one thread can
// reach the counters before the allocation another thread made: the sums
// dip below zero for a while, and that never shows as a huge count or peak.
//
// Thread safety: lock-free (relaxed atomics); a snapshot is not atomic as a
// whole.
#pragma once

#include <atomic>
#include <cstdint>

namespace guardarena {

// A transient negative count read as unsigned: report it as 0, not as
// 2^64 - n.
constexpr std::uint64_t not_negative(std::uint64_t v) noexcept {
  return static_cast<std::int64_t>(v) < 0 ? 0 : v;
}

class LiveCounters {
 public:
  // Adds `blocks` and `bytes` (deltas, possibly negative) and `allocations`
  // new allocations; raises the peaks to the new sums.
  void add(std::int64_t blocks, std::int64_t bytes, std::uint64_t allocations) noexcept {
    const std::uint64_t b =
        blocks_.fetch_add(static_cast<std::uint64_t>(blocks), std::memory_order_relaxed) +
        static_cast<std::uint64_t>(blocks);
    const std::uint64_t by =
        bytes_.fetch_add(static_cast<std::uint64_t>(bytes), std::memory_order_relaxed) +
        static_cast<std::uint64_t>(bytes);
    raise(peak_blocks_, not_negative(b));
    raise(peak_bytes_, not_negative(by));
    if (allocations != 0) allocations_.fetch_add(allocations, std::memory_order_relaxed);
  }
  // One block of `bytes` freed.
  void remove(std::uint64_t bytes) noexcept {
    blocks_.fetch_sub(1, std::memory_order_relaxed);
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  void reset() noexcept {
    blocks_ = 0;
    bytes_ = 0;
    peak_blocks_ = 0;
    peak_bytes_ = 0;
    allocations_ = 0;
  }

  std::uint64_t blocks() const noexcept {
    return not_negative(blocks_.load(std::memory_order_relaxed));
  }
  std::uint64_t bytes() const noexcept {
    return not_negative(bytes_.load(std::memory_order_relaxed));
  }
  std::uint64_t peak_blocks() const noexcept {
    return peak_blocks_.load(std::memory_order_relaxed);
  }
  std::uint64_t peak_bytes() const noexcept { return peak_bytes_.load(std::memory_order_relaxed); }
  std::uint64_t allocations() const noexcept {
    return allocations_.load(std::memory_order_relaxed);
  }

 private:
  static void raise(std::atomic<std::uint64_t>& peak, std::uint64_t v) noexcept {
    std::uint64_t p = peak.load(std::memory_order_relaxed);
    while (v > p && !peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
    }
  }
  std::atomic<std::uint64_t> blocks_{0}, bytes_{0}, peak_blocks_{0}, peak_bytes_{0};
  std::atomic<std::uint64_t> allocations_{0};
};

}  // namespace guardarena
