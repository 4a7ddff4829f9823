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
  // When not null: receives the first frame that is the program's own (not
  // a public entry point such as memory_resource::deallocate inlined into it,
  // nor a system library's, such as libc's strcpy; failing one, the first
  // frame) as "function file:line" (or what of it is known, else
  // "(module+0xoffset)"), NUL-terminated, for SUMMARY lines.
  char* first_frame = nullptr;
  std::size_t first_frame_cap = 0;
};

void print_frames(RawWriter& w, const std::uintptr_t* pcs, std::size_t n,
                  const StackPrintOptions& o) noexcept;

}  // namespace guardarena
