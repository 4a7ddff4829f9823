// Prints stack frames for reports, text or JSON, symbolized with the best
// means available (see symbolizer.h). Async-signal-safe as far as the
// symbolizer allows: no malloc, fixed buffers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace guardarena {
class RawWriter;

struct StackPrintOptions {
  bool symbolize = true;
  const char* symbolizer_path = nullptr;  // nullptr: auto
  bool first_is_pc = false;               // frame 0 is a faulting pc, not a return address
  bool json = false;                      // JSON array elements instead of text lines
  bool hide_addresses = false;            // secure execution: module+offset only, no pcs
};

void print_frames(RawWriter& w, const std::uintptr_t* pcs, std::size_t n,
                  const StackPrintOptions& o) noexcept;

}  // namespace guardarena
