// The checks a free (and fast mode's reuse) makes on a block's metadata and
// bytes, and the findings they raise: double and invalid frees, mismatched
// deallocation, damaged canaries, changed poison. A finding goes to the
// reporter hook (core/hooks.h), which does not return. The checks read only
// the slot's metadata and its open pages: no locks, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/canary.h"
#include "core/finding.h"
#include "core/metadata.h"

namespace guardarena {

// The block a slot holds, for reports and leak listings.
void fill_block(BlockInfo& b, const SlotMeta& m, std::uintptr_t slot_start) noexcept;
// A finding of kind `k` at `addr` about the block in `m`.
Finding make_finding(ErrorKind k, std::uintptr_t addr, const SlotMeta& m,
                     std::uintptr_t slot_start) noexcept;

// A free of `a` that did not pass the compare-exchange from kLive: a double
// free when `a` is the recorded block of a freed slot, else an invalid free.
[[noreturn, gnu::noinline]] void report_failed_free(const SlotMeta& m, std::uintptr_t a,
                                                    std::uintptr_t block, std::uintptr_t slot_start,
                                                    AllocKind kind) noexcept;
// A free of `a`, which is no block: inside the live block `m` (interior
// pointer) when `m` is not null, else not this allocator's at all.
[[noreturn, gnu::noinline]] void report_invalid_free(std::uintptr_t a, AllocKind kind,
                                                     const SlotMeta* m,
                                                     std::uintptr_t slot_start) noexcept;

// The free must name the block as it was allocated: same family (malloc,
// new, new[], ...; pmr matches any), and the size and alignment the sized
// forms pass (0 = not given).
void check_free_matches(const SlotMeta& m, std::uintptr_t a, std::uintptr_t slot_start,
                        std::size_t size, std::size_t align, AllocKind kind) noexcept;

// Both canaries of the block in `m` (fast: fast mode's shorter canary before).
void check_slot_canaries(const SlotMeta& m, std::uintptr_t slot_start, std::size_t page,
                         bool fast) noexcept;

// The heap check's questions, answered without reporting: true, with the
// finding in `out`, when a canary of the live block in `m` is damaged
// (kSlackOverflow or kSlackUnderflow, the one after checked first)...
bool find_canary_finding(const SlotMeta& m, std::uintptr_t slot_start, std::size_t page, bool fast,
                         Finding& out) noexcept;
// ...or, in fast mode, when the poison of the quarantined block in `m`
// changed (kWriteAfterFree; blocks above kFastPoisonLimit are not poisoned).
bool find_poison_finding(const SlotMeta& m, std::uintptr_t slot_start, Finding& out) noexcept;

[[noreturn, gnu::noinline]] void report_write_after_free(const SlotMeta& m,
                                                         std::uintptr_t slot_start,
                                                         std::size_t at) noexcept;
// Fast mode: a freed block was poisoned; any change means a write after free.
// Inline: it runs on every reuse of a slot.
[[gnu::always_inline]] inline void check_slot_poison(const SlotMeta& m,
                                                     std::uintptr_t slot_start) noexcept {
  const std::size_t s = m.size == 0 ? 1 : m.size;
  if (s > kFastPoisonLimit) return;
  const std::size_t i =
      find_poison_damage(reinterpret_cast<const unsigned char*>(slot_start + m.offset), s);
  if (i != s) [[unlikely]]
    report_write_after_free(m, slot_start, i);
}

}  // namespace guardarena
