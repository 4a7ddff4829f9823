// The mprotect backend's budget of memory mappings. Every open guarded region
// there is a read/write island that splits its PROT_NONE surroundings: two
// more mappings, against vm.max_map_count. The budget is process-wide (every
// arena draws on one count) and derived once from vm.max_map_count less the
// mappings that exist at the first arena's creation and the configured
// headroom; an arena past it applies the exhaustion policy instead of letting
// the kernel fail with ENOMEM somewhere less graceful.
//
// Thread safety: lock-free (relaxed atomics; the limit is published with
// release/acquire).
#pragma once

#include <atomic>
#include <cstdint>

namespace guardarena {

// Open regions the budget allows: (max_map_count - mappings now - headroom)
// / 2, at least 0.
constexpr std::int64_t vma_region_limit(std::int64_t max_map_count, std::int64_t mappings_now,
                                        std::int64_t headroom) noexcept {
  const std::int64_t spare = max_map_count - mappings_now - headroom;
  return spare > 0 ? spare / 2 : 0;
}

// One arena's share of the process-wide count.
class VmaBudget {
 public:
  // Derives the process-wide limit on first use (reads /proc).
  void init(std::uint64_t headroom) noexcept;
  // Counts one more open region: false (and nothing counted) when the
  // process-wide budget is used up.
  bool try_open(std::uint64_t headroom) noexcept;
  // One region this arena opened is closed again.
  void closed() noexcept;
  // Every region of this arena is gone (release(), destruction).
  void close_all() noexcept;
  std::int64_t open() const noexcept { return open_.load(std::memory_order_relaxed); }
  // Open regions of every arena in the process.
  static std::int64_t process_open() noexcept;
  // The process-wide limit on open regions (-1 before the first init()).
  static std::int64_t process_limit() noexcept;
  // Fewer than three quarters of the process-wide limit are open.
  static bool has_room() noexcept { return process_open() < process_limit() / 4 * 3; }

 private:
  std::atomic<std::int64_t> open_{0};
};

}  // namespace guardarena
