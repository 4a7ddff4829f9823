// The policy an arena follows when a limit on guarding (the memory budget,
// the mprotect backend's vm.max_map_count budget) refuses a block under
// on_exhaustion=fallback: the program keeps running and keeps some
// detection. From the first refusal on, about one new allocation in N is
// still guarded and the others are served unguarded by the fallback
// allocator; N starts at 2, doubles at each further refusal (up to
// kMaxRate) and halves whenever a guarded allocation, a closed slot or a
// fast-mode free finds every limit less than three quarters used, down to 1
// (every allocation guarded again).
//
// Only allocations that need a slot opened are rationed: fast mode's reuse
// of open slots costs no memory and stays guarded. While N is 1 the
// allocation path pays one relaxed load (active()).
//
// Thread safety: lock-free (relaxed atomics). Which allocations are drawn is
// a hash of a shared sequence number, so the guarded ones never fall into
// step with a program's own pattern (every second block, ...).
#pragma once

#include <atomic>
#include <cstdint>

namespace guardarena {

class GuardRationing {
 public:
  static constexpr std::uint64_t kMaxRate = std::uint64_t{1} << 12;

  // True while allocations are rationed (N > 1).
  bool active() const noexcept { return rate_.load(std::memory_order_relaxed) > 1; }
  // The N in force: one new allocation in N is guarded.
  std::uint64_t rate() const noexcept { return rate_.load(std::memory_order_relaxed); }

  // While active(): true for about one call in rate(), the allocations that
  // stay guarded.
  bool draw() noexcept {
    const std::uint64_t n = sequence_.fetch_add(1, std::memory_order_relaxed);
    return mix(n) % rate() == 0;
  }
  // A limit refused a block: N doubles. Returns the new N.
  std::uint64_t refused() noexcept {
    std::uint64_t r = rate_.load(std::memory_order_relaxed);
    std::uint64_t next = 0;
    do {
      next = r >= kMaxRate ? kMaxRate : r * 2;
    } while (!rate_.compare_exchange_weak(r, next, std::memory_order_relaxed));
    return next;
  }
  // A drawn allocation was guarded, or a slot closed, with every limit below
  // three quarters: N halves.
  void eased() noexcept {
    std::uint64_t r = rate_.load(std::memory_order_relaxed);
    while (r > 1 && !rate_.compare_exchange_weak(r, r / 2, std::memory_order_relaxed)) {
    }
  }
  // One block served unguarded because of a limit (drawn out or refused).
  void count_unguarded() noexcept { unguarded_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t unguarded() const noexcept { return unguarded_.load(std::memory_order_relaxed); }

  // release(): every block is gone, guarding starts over.
  void reset() noexcept {
    rate_.store(1, std::memory_order_relaxed);
    unguarded_.store(0, std::memory_order_relaxed);
  }

 private:
  // splitmix64's finaliser.
  static std::uint64_t mix(std::uint64_t x) noexcept {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  std::atomic<std::uint64_t> rate_{1};
  std::atomic<std::uint64_t> sequence_{0};
  std::atomic<std::uint64_t> unguarded_{0};
};

}  // namespace guardarena
