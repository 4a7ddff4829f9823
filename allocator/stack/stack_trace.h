// Stack capture at allocation and free time, and the depot that stores each
// distinct stack once. Everything here runs inside malloc and inside the fault
// handler, so none of it may allocate through malloc, take a blocking lock, or
// crash on a frame it does not understand: frames without frame pointers end
// the walk instead of being followed.
#pragma once

#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace guardarena::stack {

// Deepest stack any capture or the depot handles; callers clamp their
// configured depth to it.
inline constexpr std::size_t kMaxDepth = 256;

// How capture() walks the stack.
enum class Unwinder : std::uint8_t {
  // Follow the frame-pointer chain: a few ns per frame, no locks, no calls.
  // Stops at the first frame compiled without frame pointers (libc functions,
  // other -fomit-frame-pointer code), so traces through such code are short.
  kFramePointer,
  // libgcc's _Unwind_Backtrace over .eh_frame: complete traces through code
  // without frame pointers, about 1 us per frame. It does not call malloc on
  // glibc with PT_GNU_EH_FRAME objects (the normal dynamic case; it uses
  // dl_iterate_phdr and a static cache), but it takes the dynamic loader's
  // lock, so it is not async-signal-safe and must not be used while the
  // calling thread may hold that lock (inside dlopen).
  kLibgcc,
};

// Writes up to `max_depth` program counters of the calling thread into `pcs`,
// innermost first, and returns how many it wrote. pcs[0] is the return address
// into the caller of capture() when skip == 0; `skip` drops that many more
// innermost frames (wrappers such as malloc itself). Every entry is a return
// address (it points after the call): symbolize pc - 1.
//
// Frame-pointer walk: each frame pointer must be 8-aligned, strictly above the
// previous one, less than 1 MiB above it, and below the top of the current
// thread's stack when that top is known (pthread_self() for threads glibc
// created, __libc_stack_end for the main thread; on other stacks, such as
// fibers, only the step rule applies). The walk stops at the first frame that
// breaks a rule or has a null return address.
//
// Async-signal-safe, lock-free, never allocates. Thread-safe.
std::size_t capture(std::uintptr_t* pcs, std::size_t max_depth, std::size_t skip) noexcept;

// capture() with a choice of unwinder. Unwinder::kLibgcc falls back to the
// frame-pointer walk if _Unwind_Backtrace returns nothing.
std::size_t capture(std::uintptr_t* pcs, std::size_t max_depth, std::size_t skip,
                    Unwinder unwinder) noexcept;

// A half-open range of code addresses [lo, hi); empty when lo == hi.
struct CodeRange {
  std::uintptr_t lo = 0, hi = 0;
  bool contains(std::uintptr_t pc) const noexcept { return pc >= lo && pc < hi; }
};

// The 64-bit hash the depot files stacks under, built one frame at a time so
// that a walk can hash as it goes instead of making a second pass. Frames are
// added innermost first; finish(n) takes the number of frames added.
// Deterministic (the depot re-verifies it on load), not cryptographic.
class StackHash {
 public:
  void add(std::uintptr_t pc) noexcept {
    std::uint64_t k = pc;
    k *= 0x87c37b91114253d5ULL;
    k = (k << 31) | (k >> 33);
    k *= 0x4cf5ad432745937fULL;
    h_ ^= k;
    h_ = ((h_ << 27) | (h_ >> 37)) * 5 + 0x52dce729;
  }
  std::uint64_t finish(std::size_t n) const noexcept {
    // The length goes in last so that a prefix of a stack hashes differently.
    std::uint64_t h = h_ ^ (n * 0xff51afd7ed558ccdULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
  }

 private:
  std::uint64_t h_ = 0x9e3779b97f4a7c15ULL;
};

inline std::uint64_t hash_frames(const std::uintptr_t* pcs, std::size_t n) noexcept {
  StackHash h;
  for (std::size_t i = 0; i < n; ++i) h.add(pcs[i]);
  return h.finish(n);
}

// The allocator's capture in one pass: the frame-pointer walk of capture()
// (same rules, same `skip`), then up to `max_trim` further innermost frames
// whose pc lies in `trim` are dropped (the allocator's own entry points, when
// it lives in a shared object of its own), then up to `max_depth` frames are
// kept in `pcs` and hashed as they are found. Trimming stops at the first
// frame outside `trim`. Returns the number of frames kept and sets *hash to
// hash_frames(pcs, n) (also when n is 0).
//
// Async-signal-safe, lock-free, never allocates. Thread-safe.
std::size_t capture_trimmed(std::uintptr_t* pcs, std::size_t max_depth, std::size_t skip,
                            CodeRange trim, std::size_t max_trim, std::uint64_t* hash) noexcept;

// The records a frame-pointer walk read, in order: enough to tell later, with
// independent loads instead of a chain of dependent ones, that the same walk
// would read the same records and so produce the same frames.
struct WalkTrail {
  static constexpr std::size_t kMaxSteps = 24;
  struct Step {
    std::uintptr_t next_fp;
    std::uintptr_t return_address;
  };
  std::uintptr_t start = 0;  // the frame the walk began at
  // The last record's next_fp values that would have taken the walk one
  // record further: [follow_lo, follow_hi], 8-aligned. Empty (lo > hi) when
  // the walk ended for another reason (depth, a null return address), where
  // that word plays no part. A walk ended by that word ends the same way for
  // any value outside the range: code without frame pointers keeps a loop
  // counter or a pointer in rbp, which changes at every call.
  std::uintptr_t follow_lo = 1;
  std::uintptr_t follow_hi = 0;
  std::uint32_t steps = 0;  // records read; 0 when more than kMaxSteps were
  Step step[kMaxSteps];

  // True when the walk would read the same records to the same effect: every
  // record but the last holds the value the walk read, and the last holds
  // the same return address and a next_fp the walk would treat alike (see
  // follow_lo). Walks are a function of their start, top, parameters and the
  // records they read (each record's address is the previous record's
  // next_fp), so a walk with the same start, top and parameters would then
  // produce the same frames.
  // Reads only addresses the walk read, all below the top that bounded it:
  // call it only from a frame at or below `start` on the same thread's
  // stack, for a walk whose top was known (the caller keeps trails per
  // thread, and the same thread and start imply the same top). Not instrumented by ASan: a stale
  // address may now lie in another frame's locals (redzones included), which is fine to read and
  // compare. Always inlined: its callers (the memo lookup) are not instrumented either.
  __attribute__((no_sanitize("address"), always_inline)) bool still_holds() const noexcept {
    if (steps == 0) return false;
    // A record and its step are both 16 bytes laid out alike: one vector
    // compare each.
    using Words = std::uintptr_t __attribute__((vector_size(16), aligned(8)));
    std::uintptr_t at = start;
    Words diff = {};
    const std::uint32_t last = steps - 1;
    for (std::uint32_t i = 0; i < last; ++i) {
      // Plain loads, not memcpy, which ASan would intercept. A vector of
      // uintptr_t may alias uintptr_t (GCC and Clang give vectors their
      // element type's alias set).
      // NOLINTNEXTLINE(performance-no-int-to-ptr): frame pointers are integers here.
      const Words record = *reinterpret_cast<const Words*>(at);
      diff |= record ^ *reinterpret_cast<const Words*>(&step[i]);
      at = step[i].next_fp;  // from the trail, not the load: no dependent chain
    }
    // NOLINTNEXTLINE(performance-no-int-to-ptr): frame pointers are integers here.
    const auto* record = reinterpret_cast<const std::uintptr_t*>(at);
    const std::uintptr_t next = record[0];
    const bool follows =
        next >= follow_lo && next <= follow_hi && (next & (sizeof(std::uintptr_t) - 1)) == 0;
    return (diff[0] | diff[1] | (record[1] ^ step[last].return_address)) == 0 && !follows;
  }
};

// capture_trimmed() from the frame record at `fp` (a live frame of the
// calling thread: the caller's own, or one of its callers'), bounded by
// `top` (stack_top_of(fp)). When `trail` is not null it receives the records
// read (trail->steps = 0 if there were more than WalkTrail::kMaxSteps).
std::size_t walk_trimmed(std::uintptr_t fp, std::uintptr_t top, std::uintptr_t* pcs,
                         std::size_t max_depth, std::size_t skip, CodeRange trim,
                         std::size_t max_trim, std::uint64_t* hash, WalkTrail* trail) noexcept;

// The highest address of the stack holding `sp` when glibc told us where the
// calling thread's stack ends (its own threads and the main thread), else
// UINTPTR_MAX (fibers, sigaltstack, threads glibc did not create).
std::uintptr_t stack_top_of(std::uintptr_t sp) noexcept;

// stack_top_of() for a caller that already knows the calling thread's
// pthread_self(): saves the call on the allocator's hot path.
std::uintptr_t stack_top_of(std::uintptr_t sp, std::uintptr_t self) noexcept;

// The stack of the code a signal interrupted, for the SIGSEGV/SIGBUS handler:
// pcs[0] is the interrupted instruction itself (symbolize it as is, not
// pc - 1), then the return addresses of its callers. `uc` must be the context
// the kernel passed to the running handler (or one from getcontext() in a
// frame that is still live).
//
// Unwinder::kFramePointer walks the frame-pointer chain from the interrupted
// frame pointer, bounded below by the interrupted stack pointer, reading each
// record through process_vm_readv so a smashed stack cannot fault. Never
// allocates, no locks, async-signal-safe. Limitation: when the fault hit code
// whose frame is not set up at that instruction (functions without frame
// pointers such as memcpy, or a prologue/epilogue: GCC pops rbp before the
// last loads of a leaf), the frame pointer still belongs to the caller, so
// the immediate caller is missing from the trace, as with ASan's fast
// unwinder.
//
// Unwinder::kLibgcc unwinds with _Unwind_Backtrace from the handler itself
// through the kernel's signal frame and keeps the frames from the interrupted
// pc on: exact through any code that has unwind tables, no malloc, but it
// takes the loader's lock (see Unwinder). Falls back to the frame-pointer walk
// if libgcc does not find the interrupted frame (no unwind info, or `uc` is
// not the running handler's context).
//
// Returns 0 when `uc` is null or the architecture is not supported (x86-64 and
// AArch64 are).
std::size_t capture_from_context(const ucontext_t* uc, std::uintptr_t* pcs, std::size_t max_depth,
                                 Unwinder unwinder = Unwinder::kFramePointer) noexcept;

// Depot statistics, read with relaxed loads (a consistent snapshot is not
// guaranteed while other threads store).
struct StackDepotStats {
  std::size_t entries = 0;         // distinct stacks stored
  std::size_t bytes_used = 0;      // hash table + stored stacks; <= capacity_bytes
  std::size_t capacity_bytes = 0;  // the budget given to init()
  std::uint64_t drops = 0;         // store() calls that returned 0 for lack of room
};

// A bounded, deduplicating store of stacks shared by all threads. Each
// distinct stack is kept once and named by a 32-bit id; 0 means "no stack".
//
// Memory: one mapping of `capacity_bytes` obtained from os::map_internal in
// init() (MAP_NORESERVE, so untouched capacity costs nothing), split into a
// hash table of bucket heads and a bump-allocated pool of entries. It never
// grows; when the pool is full, store() of a new stack returns 0 and counts a
// drop, while stacks already stored are still found.
//
// Concurrency: store() is lock-free (bucket heads are updated with CAS, the
// pool with an atomic bump), so it is safe from any number of threads and
// from a signal handler that interrupted a store() on the same thread. load()
// and stats() only read, and are safe concurrently with store(), including
// from a signal handler. Entries are immutable once published and never
// removed.
//
// Constant-initialized and trivially destructible, so a global depot is safe
// to use from the first malloc to the last free at exit.
class StackDepot {
 public:
  constexpr StackDepot() noexcept = default;
  StackDepot(const StackDepot&) = delete;
  StackDepot& operator=(const StackDepot&) = delete;

  // Maps the depot's memory. Returns false if the depot is already
  // initialized, if `capacity_bytes` is too small for the table plus one
  // stack (< 4 KiB), or if the mapping fails. Capacity is rounded down to a
  // multiple of 8 and clamped so ids fit in 32 bits. Not thread-safe: call
  // once, before other threads use the depot.
  bool init(std::size_t capacity_bytes) noexcept;

  // Returns the memory to the kernel. Only when no other thread can touch the
  // depot any more (tests, teardown); ids handed out before become invalid.
  void release() noexcept;

  // True between a successful init() and release().
  bool initialized() const noexcept { return base_ != nullptr; }

  // Stores pcs[0..n) (n is clamped to kMaxDepth) unless an equal stack is
  // already there, and returns the id of the stored stack. Returns 0 when n is
  // 0, the depot is not initialized, or the stack is new and does not fit.
  std::uint32_t store(const std::uintptr_t* pcs, std::size_t n) noexcept;

  // store() for a caller that hashed the frames already: `hash` must be
  // hash_frames(pcs, n) for n <= kMaxDepth (a wrong hash stores a stack that
  // load() then refuses, and misses the equal stack already stored).
  std::uint32_t store(const std::uintptr_t* pcs, std::size_t n, std::uint64_t hash) noexcept;

  // Changes at every successful init(), process-wide unique and never 0 for
  // an initialized depot: ids are only meaningful together with it, so a
  // cache of ids (stack_cache.h) can tell that the depot behind them was
  // released or replaced.
  std::uint64_t generation() const noexcept { return generation_; }

  // Called with the depot at the start of every init() and release(), when
  // set: a cache that keeps no generation per lookup (stack_cache.h's
  // configured capture) forgets what it knows of that depot. One hook per
  // process, set before any depot is reset concurrently with it.
  static inline std::atomic<void (*)(const StackDepot&) noexcept> reset_hook{nullptr};

  // Copies up to `max` frames of stack `id` into `out` and returns how many it
  // copied. Returns 0 for id 0 and for ids that do not name a stored stack:
  // the id is range-checked and the entry's hash re-verified, so a corrupted
  // id read from damaged metadata yields 0, never a crash.
  std::size_t load(std::uint32_t id, std::uintptr_t* out, std::size_t max) const noexcept;

  StackDepotStats stats() const noexcept;

 private:
  struct Entry;

  const Entry* entry_at(std::uint32_t id) const noexcept;
  std::uint32_t find(std::uint32_t head, std::uint32_t stop, std::uint64_t hash,
                     const std::uintptr_t* pcs, std::size_t n) const noexcept;

  unsigned char* base_ = nullptr;  // the whole mapping
  std::size_t capacity_ = 0;       // bytes mapped
  std::atomic<std::uint32_t>* buckets_ = nullptr;
  std::size_t bucket_mask_ = 0;    // bucket count - 1 (power of two)
  unsigned char* pool_ = nullptr;  // entries, 8-byte units
  std::size_t pool_bytes_ = 0;
  std::atomic<std::size_t> pool_used_{0};  // bump pointer, bytes
  std::atomic<std::size_t> entries_{0};
  std::atomic<std::uint64_t> drops_{0};
  std::uint64_t generation_ = 0;
};

}  // namespace guardarena::stack
