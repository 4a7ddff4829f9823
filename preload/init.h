// Process-wide state of the preload library: the one arena (in static
// storage, never destroyed), its options, the one-time initialisation, the
// static bootstrap buffer that serves allocations made before the arena can
// exist, the per-thread re-entrancy guard and free()'s shortcut to glibc.
// shim.cpp maps the C and C++ entry points onto these (and onto the sampler,
// sampling.h); nothing here is exported.
//
// Everything here runs inside malloc, possibly before libc has finished
// starting up: no malloc, no stdio, no getenv, no general-dynamic TLS.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/arena.h"
#include "options/options.h"
#include "stack/stack_cache.h"

// glibc's own allocator, reached without dlsym (public GLIBC_2.2.5 symbols;
// there is no __libc_posix_memalign/__libc_aligned_alloc: memalign covers them).
extern "C" {
void* __libc_malloc(std::size_t size) noexcept;
void* __libc_calloc(std::size_t n, std::size_t size) noexcept;
void* __libc_realloc(void* p, std::size_t size) noexcept;
void* __libc_memalign(std::size_t align, std::size_t size) noexcept;
void __libc_free(void* p) noexcept;
}

namespace guardarena::preload {

enum class InitState : std::uint8_t { kUninitialised, kInitialising, kReady };

extern std::atomic<InitState> g_state;
// The arena, published (release) once it and everything set up with it is
// complete; null before, and for good in a process that runs unguarded
// because no arena could be made. One load answers "ready?" on every call.
extern std::atomic<Arena*> g_arena;
extern Options g_options;
// Set once any pointer handed to the program came from glibc (sampling, size
// band, sample_after, re-entrant calls). While it is clear, a pointer that is
// neither the arena's nor the bootstrap buffer's cannot be a heap block.
extern std::atomic<bool> g_delegated;
// Counted only with print_stats. A whole cache line: with print_stats every
// unguarded allocation bumps it, while the flags above are read by every
// malloc and free.
struct alignas(64) SharedCounter {
  std::atomic<std::uint64_t> value{0};
};
extern SharedCounter g_delegated_count;

// Per-thread re-entrancy flag: the calling thread is inside the allocator
// (init, an allocation, a free, a report), so any malloc reached from there is
// served by glibc or the bootstrap buffer instead of recursing into the arena.
// It is stack::t_allocator_entry, the entry frame stack captures walk from:
// one initial-exec TLS word (glibc's manual requires initial-exec of a malloc
// replacement; general-dynamic TLS may itself call malloc). The word lives in
// the stack layer because the stack walker reads it on every capture (and
// the pmr resource marks its entry frames with it too); one word serving both
// roles keeps the shim's fast path to a single TLS store per call.
[[gnu::always_inline]] inline bool busy() noexcept {
  return stack::t_allocator_entry != 0;
}

// Marks the thread busy for the scope. `entry` is the frame of the exported
// function the call came through (pass __builtin_frame_address(0) from it, or
// from an always_inline helper it calls), else of the scope's own function:
// allocation and free stacks are walked from there.
using BusyScope = stack::EntryFrameScope;

Arena* init_slow() noexcept;

// The arena once initialised. Initialises on first use; returns nullptr while
// the arena cannot be used yet: before libc has set `environ`, or on the
// thread that is running the initialisation (its re-entrant calls). A bad
// GUARDARENA_OPTIONS value ends the process here with status 1.
inline Arena* arena() noexcept {
  if (Arena* a = g_arena.load(std::memory_order_acquire)) [[likely]]
    return a;
  return init_slow();
}

// The arena if it is ready, without initialising (free paths).
inline Arena* ready_arena() noexcept {
  return g_arena.load(std::memory_order_acquire);
}

// Bootstrap buffer: a static bump allocator for the few allocations made
// before the arena exists. Never reused; free() of its blocks is a no-op.
// Returns nullptr when the buffer is full.
void* bootstrap_allocate(std::size_t size, std::size_t align) noexcept;
inline constexpr std::size_t kBootstrapBytes = std::size_t{256} * 1024;
extern unsigned char g_bootstrap[kBootstrapBytes];
// One range check: free() asks it of every pointer.
inline bool is_bootstrap(const void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  return a - reinterpret_cast<std::uintptr_t>(g_bootstrap) < kBootstrapBytes;
}
// Requested size of a bootstrap block.
std::size_t bootstrap_size(const void* p) noexcept;
std::uint64_t bootstrap_count() noexcept;

// free()'s shortcut to glibc: a pointer outside [g_guarded_lo, g_guarded_lo +
// g_guarded_span) and outside the bootstrap buffer is glibc's. The span
// covers everything (the shortcut is closed) until open_free_shortcut() finds
// it safe: the arena is ready and its reservation known, something was
// delegated to glibc (before that, a foreign pointer must be reported, not
// freed), and the arena never served a fallback block (glibc memory the
// arena tracks, so its free must reach the arena; the first one closes the
// shortcut for good). In a process left unguarded (no arena) it covers
// nothing. Two loads and two range checks: sampling mode's free of a
// sampled-out block costs little more than glibc's own.
extern std::atomic<std::uintptr_t> g_guarded_lo;
extern std::atomic<std::uintptr_t> g_guarded_span;
// The span's two closed values: any address (but the last one or two, which
// no allocator returns) is then the arena's to judge.
inline constexpr std::uintptr_t kShortcutNotOpen = UINTPTR_MAX - 1;  // may open
inline constexpr std::uintptr_t kShortcutClosed = UINTPTR_MAX;       // never again
inline bool is_glibc_block(const void* p) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  // Acquire pairs with open_free_shortcut()'s release: a span that was
  // opened comes with its base.
  const std::uintptr_t span = g_guarded_span.load(std::memory_order_acquire);
  return a - g_guarded_lo.load(std::memory_order_relaxed) >= span && !is_bootstrap(p);
}
// Called on the slow path when a block went back to glibc; cheap when the
// shortcut is open already or must stay closed.
void open_free_shortcut() noexcept;

#ifdef GUARDARENA_PRELOAD_FOR_TESTING
// Destroys the arena and returns every piece of state here to its initial
// value (bootstrap_test.cpp only; the library never tears down).
void reset_for_testing() noexcept;
#endif

}  // namespace guardarena::preload
