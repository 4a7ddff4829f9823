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

#include "core/slot_list.h"
#include "os/thread.h"

namespace guardarena {

class Arena;

struct ThreadCache {
  static constexpr std::uint32_t kClasses = 16;
  // Free slots a thread keeps per class; more go back to the class.
  static constexpr std::uint32_t kFreeCap = 64;
  // Slots taken from the class per refill (one lock).
  static constexpr std::uint32_t kRefill = 16;
  // The quarantine evicts ahead: once it is within kEvictAhead slots of its
  // bound, an allocation that finds fewer than kEvictAhead free slots gives
  // up its oldest one. In steady state the free list is then a FIFO of at
  // most kEvictAhead slots evicted (and prefetched) a few allocations before
  // their reuse (design.md, fast mode).
  static constexpr std::uint32_t kEvictAhead = 8;

  Arena* owner = nullptr;
  // The owner's epoch when this cache was filled. Epochs come from one
  // process-wide counter and start at 1, so an arena whose epoch matches is
  // the owner: the fast paths compare the epoch alone.
  std::uint64_t epoch = 0;
  bool exit_hook = false;  // pthread key set, so thread exit flushes us
  // Statistics deltas, folded into the arena at refills and on request.
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
  std::uint64_t allocations = 0;
  // Free slots per class, oldest first.
  SlotFifo free[kClasses];
  // Quarantine of every class, oldest first, and the bytes it holds.
  SlotFifo quarantine;
  std::uint64_t q_bytes = 0;
  // The quarantine's count and bytes when the statistics were last folded:
  // the quarantine statistics' delta is the difference, so a push or pop
  // keeps no counter of its own.
  std::uint64_t folded_q_count = 0;
  std::uint64_t folded_q_bytes = 0;
  // This thread's share of the quarantine bounds, for bound_threads threads
  // (0 = not computed yet).
  std::uint64_t bound_threads = 0;
  std::uint64_t slot_bound = 0;
  std::uint64_t byte_bound = 0;
};

// The calling thread's cache. Hidden, initial-exec: one TLS access, no call.
extern constinit __attribute__((tls_model("initial-exec"),
                                visibility("hidden"))) thread_local ThreadCache t_cache;

// The hand-back protocol. A thread gives its cache back to the cache's arena
// (Arena::absorb_thread_cache) when it switches arenas or exits, if that
// arena is still registered at the cache's epoch. Check and hand-back run
// under the read side of handback_lock(); destroying an arena
// (unregister_arena) and resetting one (release(), fork: Arena::lock_all)
// take the write side, so a cache is never absorbed into an arena while or
// after it is destroyed or reset. Lock order: this lock, then the arena's
// class locks. The write side may be released by a thread other than the one
// that took it (a fork() child's): os::SharedSpinLock records no owner.
os::SharedSpinLock& handback_lock() noexcept;

// Gives `tc` back to its owner if that is still current; a no-op for a
// cache with no owner or a stale one. Leaves tc's fields as they are.
void return_cache_to_owner(ThreadCache& tc) noexcept;

// Hands `tc` back, then makes it `owner`'s at `epoch`, empty (whatever was
// left belongs to a released or destroyed arena and is dropped), and makes
// sure the calling thread's exit hands it back (a pthread key whose
// destructor runs return_cache_to_owner; keys below 32 live inside glibc's struct
// pthread, so setting ours never allocates).
void attach(ThreadCache& tc, Arena* owner, std::uint64_t epoch) noexcept;

}  // namespace guardarena
