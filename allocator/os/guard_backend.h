// The two guard backends behind one compile-time interface (GuardBackend).
// The arena is a template over the backend, chosen once in Arena::create();
// the core never branches on the backend at run time.
//
// Verbs (all on page-aligned ranges inside a reservation; false = ENOMEM or
// unsupported, the caller applies the exhaustion policy):
//   prepare_chunk: a fresh PROT_NONE chunk becomes ready for open/close, all
//                  of it still inaccessible.
//   open:          make a range read/write; its contents read as zero if it
//                  was closed or fresh.
//   close:         make a range inaccessible and give its pages back.
//   open_many:     (kBatchesOpen only) open up to kMaxBatch ranges of equal
//                  size at once, pages committed; returns how many leading
//                  ranges are open.
//   open_ranges, close_ranges: (kBatchesOpen only) open or close any number
//                  of ranges in a few syscalls, nothing committed; return
//                  how many leading ranges are done.
#pragma once

#include <concepts>
#include <cstddef>

#include "os/os_linux.h"

namespace guardarena::os {

template <class B>
concept GuardBackend = requires(void* p, std::size_t n) {
  { B::kName } -> std::convertible_to<const char*>;
  { B::kCountsVmas } -> std::convertible_to<bool>;
  { B::kBatchesOpen } -> std::convertible_to<bool>;
  { B::prepare_chunk(p, n) }
  noexcept->std::same_as<bool>;
  { B::open(p, n) }
  noexcept->std::same_as<bool>;
  { B::close(p, n) }
  noexcept->std::same_as<bool>;
};

// MADV_GUARD_INSTALL/REMOVE (Linux 6.13+): guard markers live in the page
// tables, so slots never split a VMA and millions of blocks stay guarded. A
// chunk is made read/write once (merging with its neighbours into one VMA)
// and then covered with markers.
struct GuardRegionBackend {
  static constexpr const char* kName = "guard";
  static constexpr bool kCountsVmas = false;
  static constexpr bool kBatchesOpen = true;
  static bool prepare_chunk(void* p, std::size_t n) noexcept {
    return protect_read_write(p, n) && guard_install(p, n);
  }
  static bool open(void* p, std::size_t n) noexcept { return guard_remove(p, n); }
  static std::size_t open_many(void* const* starts, std::size_t n, std::size_t count) noexcept {
    return guard_remove_many(starts, n, count);
  }
  // Installing a marker over populated pages also discards them: one syscall.
  static bool close(void* p, std::size_t n) noexcept { return guard_install(p, n); }
  static std::size_t open_ranges(const Range* r, std::size_t n) noexcept {
    return guard_remove_ranges(r, n);
  }
  static std::size_t close_ranges(const Range* r, std::size_t n) noexcept {
    return guard_install_ranges(r, n);
  }
};

// mprotect (every kernel): the reservation stays PROT_NONE and each open
// block is a read/write island, costing about two VMAs under
// vm.max_map_count; the arena budgets them (kCountsVmas).
struct MprotectBackend {
  static constexpr const char* kName = "mprotect";
  static constexpr bool kCountsVmas = true;
  // Every open island is budgeted one at a time (vm.max_map_count).
  static constexpr bool kBatchesOpen = false;
  static bool prepare_chunk(void*, std::size_t) noexcept { return true; }
  static bool open(void* p, std::size_t n) noexcept { return protect_read_write(p, n); }
  static bool close(void* p, std::size_t n) noexcept { return replace_with_inaccessible(p, n); }
};

static_assert(GuardBackend<GuardRegionBackend>);
static_assert(GuardBackend<MprotectBackend>);

}  // namespace guardarena::os
