// Per-thread state of fast mode: free slots per size class and the thread's
// own quarantine FIFO, both linked through the slots' out-of-band metadata,
// so that a malloc/free pair in steady state takes no lock, makes no syscall
// and touches no cache line another thread writes: a slot freed by a thread
// is quarantined and reused by that same thread. Internal to the arena;
// plain data in initial-exec TLS (the preload library must not make glibc
// allocate TLS lazily: that would call malloc), kept small because a
// dlopen'ed libguardarena_pmr.so draws it from glibc's static-TLS surplus.
#pragma once

#include <cstdint>

namespace guardarena {

class Arena;

struct ThreadCache {
  static constexpr std::uint32_t kClasses = 16;
  // Free slots a thread keeps per class; more go back to the class.
  static constexpr std::uint32_t kFreeCap = 64;
  // Slots taken from the class per refill (one lock).
  static constexpr std::uint32_t kRefill = 16;
  // The quarantine starts giving up its oldest slot (one per allocation)
  // once it is within kLead slots of its bound. In steady state the slot
  // reused is then often the one just evicted (design.md, fast mode).
  static constexpr std::uint32_t kLead = 8;

  Arena* owner = nullptr;
  std::uint64_t epoch = 0;  // owner's epoch when this cache was filled
  bool exit_hook = false;   // pthread key set, so thread exit flushes us
  // Statistics deltas, folded into the arena at refills and on request.
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
  std::uint64_t allocations = 0;
  std::int64_t quarantined_blocks = 0;
  std::int64_t quarantined_bytes = 0;
  // Free lists, oldest first (head and tail valid only while the count is
  // non-zero).
  std::uint32_t free_head[kClasses] = {};
  std::uint32_t free_tail[kClasses] = {};
  std::uint32_t free_count[kClasses] = {};
  // Quarantine FIFO of every class, oldest first.
  std::uint32_t q_head = 0;
  std::uint32_t q_tail = 0;
  std::uint32_t q_count = 0;
  std::uint64_t q_bytes = 0;
  // This thread's share of the quarantine bounds, for bound_threads threads
  // (0 = not computed yet).
  std::uint64_t bound_threads = 0;
  std::uint64_t slot_bound = 0;
  std::uint64_t byte_bound = 0;
};

}  // namespace guardarena
