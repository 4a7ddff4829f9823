// Whether an A64 (AArch64) instruction reads or writes memory, decoded from
// its encoding: what a fault report says when the signal frame carries no
// syndrome (ESR) telling it. Pure, so it is tested on every host.
#pragma once

#include <cstdint>

#include "report/report.h"

namespace guardarena::report {

// Load/store encodings have bit 27 set and bit 25 clear. In all of them but
// the atomic memory operations, bit 22 tells a load (1) from a store (0).
// Atomics (the register classes with bit 21 set and bits 11:10 clear: LDADD,
// SWP, ...; bits 23:22 are acquire/release there) both read and write, and
// are reported as writes.
constexpr Access a64_access(std::uint32_t insn) noexcept {
  if ((insn & 0x0a000000u) != 0x08000000u) return Access::kUnknown;
  const bool register_class = (insn & 0x3b000000u) == 0x38000000u;
  if (register_class && (insn & (1u << 21)) != 0 && (insn & 0xc00u) == 0) return Access::kWrite;
  return (insn & (1u << 22)) != 0 ? Access::kRead : Access::kWrite;
}

}  // namespace guardarena::report
