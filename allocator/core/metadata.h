// Out-of-band per-slot metadata. It lives in its own mapping, never beside a
// user block, so an underflow cannot corrupt the allocator. Plain data with no
// owning pointers: the fault handler reads it without locks.
#pragma once

#include <atomic>
#include <cstdint>

namespace guardarena {

enum class SlotState : std::uint8_t {
  kUnused = 0,   // never handed out (metadata pages read as zero)
  kLive,         // handed out, accessible
  kQuarantined,  // freed, waiting in the FIFO; inaccessible in full mode
  kAvailable,    // left quarantine, on the free list
  // Freed, its poison (fast mode) or closing not done yet: the freeing
  // thread owns it. A heap check running beside that thread must not judge
  // the poison until the state says kQuarantined.
  kFreeing,
};

inline constexpr std::uint32_t kNoSlot = 0xffffffffu;

// One cache line each: an entry never straddles two lines, so every free
// and every reuse touches one line of metadata, not two.
struct alignas(64) SlotMeta {
  // Written last on allocation (release) and swapped first on free, so a
  // concurrent double free is caught by exactly one compare-exchange.
  std::atomic<SlotState> state;
  std::uint8_t alloc_kind;  // AllocKind
  std::uint8_t align_log2;
  // Fast mode: 1 while the slot's open pages hold zeros, not a freed
  // block's poison (opened ahead of use, fresh or after being closed): the
  // poison check at reuse is skipped. Cleared when the slot is handed out.
  std::uint8_t pages_zero;
  std::uint32_t next;        // free-list / quarantine link (slot id)
  std::uint64_t size;        // requested bytes
  std::uint64_t offset;      // user pointer - slot start
  std::uint64_t open_begin;  // accessible range, relative to slot start
  std::uint64_t open_end;
  std::uint32_t alloc_stack;  // depot ids, 0 = none
  // Written by the free that won the state change, after it; a racing
  // double free reports them from another thread. free_tid is stored last
  // (release) and read first (acquire): a reader that sees it non-zero sees
  // the stack id of the same free.
  std::atomic<std::uint32_t> free_stack;
  std::uint32_t alloc_tid;
  std::atomic<std::uint32_t> free_tid;
  std::uint64_t block;  // user pointer (slot start + offset), kept for the free path
};
static_assert(sizeof(SlotMeta) == 64, "one cache line per slot");
static_assert(std::atomic<SlotState>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

}  // namespace guardarena
