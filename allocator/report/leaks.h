// Leak detection at exit (detect_leaks=1): see leaks.cpp for the method.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/arena.h"

namespace guardarena::report {

struct LeakSummary {
  std::uint64_t direct_bytes = 0;
  std::uint64_t direct_objects = 0;
  std::uint64_t indirect_bytes = 0;
  std::uint64_t indirect_objects = 0;
  bool any() const noexcept { return direct_objects + indirect_objects != 0; }
};

// Finds the live blocks of `arena` that the program can no longer reach and
// prints them grouped by allocation stack (at most `max_groups` groups,
// largest first) to the report fd. Call at exit; other threads may still run
// (see leaks.cpp for what they can hide).
// No malloc; needs the blocks' pages readable (live blocks always are).
LeakSummary check_leaks(const Arena& arena, std::size_t max_groups = 64) noexcept;

}  // namespace guardarena::report
