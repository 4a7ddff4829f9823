// What an address inside an arena's reservation is: the nearest block (live
// or freed) and how the address relates to it, for the fault handler's
// reports. Reads the chunk table and slot metadata with acquire loads only:
// lock-free and async-signal-safe.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/chunk_table.h"
#include "core/metadata.h"

namespace guardarena {

// Fills `out` for `addr` (inside the reservation `table` describes): a wild
// access in a free chunk, a use after release() in a retired one, else the
// nearest block among the slot holding the address and its neighbours
// (inside a freed block wins; a live block wins over a freed one at equal
// distance) and whether the access overflowed, underflowed or came after
// the free.
void describe_address(const ChunkTable& table, const SlotMeta* meta, std::uintptr_t addr,
                      AddressInfo& out) noexcept;

}  // namespace guardarena
