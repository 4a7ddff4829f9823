// A small per-thread cache in front of a StackDepot, so that the stack of a
// call site that allocates again and again is recognised from memory the
// calling thread just used, instead of from the shared depot's hash table and
// entries. Like the depot it runs inside malloc and inside signal handlers:
// no malloc, no locks, async-signal-safe.
//
// A hit is exact: the cache compares the full frames, not only the hash, so it
// never answers with the id of a different stack.
//
// Memory: a span of fixed-size blocks mapped once by init_thread_stack_caches()
// (MAP_NORESERVE, so only the blocks threads use are resident); a thread takes
// a block at its first store_cached() and gives it back at exit (a pthread key
// destructor), so the blocks in use are bounded by the threads alive at once.
// Threads beyond the span's capacity, and threads whose block is already
// returned (later destructors that free), go straight to the depot. The only
// TLS is one initial-exec pointer (the library may be dlopen'ed, where static
// TLS is scarce).
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/stack_trace.h"

namespace guardarena::stack {

// Stacks with more frames than this bypass the cache (the default
// stack_depth is 16; deeper configured stacks pay for the depot lookup).
inline constexpr std::size_t kCachedDepth = 16;

// How many threads can hold a cache block at once.
inline constexpr std::size_t kMaxCachedThreads = 1024;

// Maps the block span and creates the thread-exit key. Idempotent and
// thread-safe (the first successful call wins); call it at configuration time,
// not from a signal handler. Returns false when the caches cannot be used (no
// memory, or a pthread key whose setspecific could allocate): store_cached()
// then forwards every stack to the depot.
bool init_thread_stack_caches() noexcept;

// Same result as depot.store(pcs, n, hash): the depot id of pcs[0..n), or 0
// when n is 0 or the depot has no room. `hash` must be hash_frames(pcs, n).
// Looks in the calling thread's cache first; on a miss, stores in the depot
// and remembers the answer (never an answer of 0). Entries remember the
// depot's generation(), so ids from a released or other depot are never
// returned. A signal handler that interrupts store_cached() on the same thread
// goes to the depot directly.
std::uint32_t store_cached(StackDepot& depot, const std::uintptr_t* pcs, std::size_t n,
                           std::uint64_t hash) noexcept;

// Deepest capture capture_cached() makes (the allocator clamps stack_depth
// to it).
inline constexpr std::size_t kMaxCapture = 64;

// The frame of the allocator entry point (malloc, free, operator new...) the
// calling thread is inside, 0 outside. Whoever sets it keeps that frame live
// (no tail call out of it) while it is set and restores the previous value on
// the way out (the LD_PRELOAD shim's BusyScope, which also reads it as
// "inside the allocator"). capture_cached() walks from it when it is set and
// above its own frame, so the allocator's own frames below it are neither
// walked nor replayed. Hidden: each copy of the library (shim, pmr) has its
// own.
extern constinit __attribute__((
    tls_model("initial-exec"), visibility("hidden"))) thread_local std::uintptr_t t_allocator_entry;

// Marks `frame` (the public entry point's __builtin_frame_address(0)) as the
// calling thread's allocator entry for the scope, restoring the previous mark
// on the way out. The destructor's store also keeps the entry function from
// tail-calling out of the marked frame.
class EntryFrameScope {
 public:
  explicit EntryFrameScope(void* frame) noexcept : was_(t_allocator_entry) {
    t_allocator_entry = reinterpret_cast<std::uintptr_t>(frame);
  }
  ~EntryFrameScope() { t_allocator_entry = was_; }
  EntryFrameScope(const EntryFrameScope&) = delete;
  EntryFrameScope& operator=(const EntryFrameScope&) = delete;

 private:
  std::uintptr_t was_;
};

// The allocator's capture: capture_trimmed(pcs, max_depth, skip, trim,
// max_trim) from this function's frame (or, when t_allocator_entry is set,
// from that frame with no skip: the trim drops the entry's own frames), then
// store_cached() of the frames, with the same result. In front of both sits
// a per-thread memo of recent walks, each named by its start frame and first
// return address, i.e. its call site (a few entries): when every frame
// record that walk read still holds the same values, the walk would take the
// same path and produce the same frames, so the memo's id is returned after
// one round of independent loads instead of a chain of dependent ones plus a
// hash and a lookup. Walks with an unknown stack top (fibers, sigaltstack)
// and depths above kCachedDepth are not memoized. Same guarantees as
// store_cached(): exact, no malloc, no locks, async-signal-safe.
std::uint32_t capture_cached(StackDepot& depot, std::size_t max_depth, std::size_t skip,
                             CodeRange trim, std::size_t max_trim) noexcept;

// capture_cached()'s answer when the calling thread has an entry frame
// marked (t_allocator_entry) and the memo answers for it, else 0 (then call
// capture_cached()): the memo half of capture_configured() below, for a
// depot and parameters of the caller's own.
std::uint32_t capture_memoized(const StackDepot& depot, std::size_t max_depth, CodeRange trim,
                               std::size_t max_trim) noexcept;

// The allocator's capture on every allocation and free, with parameters set
// once: configure_capture(depot, max_depth, trim, max_trim), then
// capture_configured(skip) answers as capture_cached(depot, max_depth, skip,
// trim, max_trim) would, trying the memo first (capture_memoized()) without
// a wrapper's frame and argument shuffling around it. Reconfiguring while
// other threads capture is safe: a capture that races with it may take parts
// of both configurations, and its stack is exact for the parameters it took.
// The depot must outlive every capture (a process-lifetime object), and be
// initialised before it is configured: the memo takes the configuration,
// the depot's generation included, as one stamp. A later init() or release()
// of that depot turns the memo of the configured capture off (its captures
// still answer, from the per-thread cache or the depot) until the next
// configuration.
void configure_capture(StackDepot& depot, std::size_t max_depth, CodeRange trim,
                       std::size_t max_trim) noexcept;
std::uint32_t capture_configured(std::size_t skip) noexcept;

// Counters of the calling thread's current block (zero when it has none).
struct ThreadStackCacheStats {
  std::uintptr_t block = 0;      // the block's address
  std::uint64_t memo_walks = 0;  // memoizable captures the memo did not answer
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;  // lookups that went to the depot
  bool has_block = false;
};
ThreadStackCacheStats thread_stack_cache_stats_for_testing() noexcept;

// Blocks currently held by threads (relaxed; for tests of the exit hook).
std::size_t thread_stack_caches_in_use_for_testing() noexcept;

}  // namespace guardarena::stack
