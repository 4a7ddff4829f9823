// Process-wide state of the preload library: the one arena (in static
// storage, never destroyed), its options, the one-time initialisation, the
// static bootstrap buffer that serves allocations made before the arena can
// exist, the per-thread re-entrancy guard and the sampler that decides which
// allocations are guarded. shim.cpp maps the C and C++ entry points onto
// these; nothing here is exported.
//
// Everything here runs inside malloc, possibly before libc has finished
// starting up: no malloc, no stdio, no getenv, no general-dynamic TLS.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/arena.h"
#include "options/options.h"

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
extern Arena* g_arena;
extern Options g_options;
// Set once any pointer handed to the program came from glibc (sampling, size
// band, sample_after, re-entrant calls). While it is clear, a pointer that is
// neither the arena's nor the bootstrap buffer's cannot be a heap block.
extern std::atomic<bool> g_delegated;
extern std::atomic<std::uint64_t> g_delegated_count;

// Per-thread re-entrancy flag (initial-exec TLS: glibc's manual requires it of
// a malloc replacement, and general-dynamic TLS may itself call malloc).
// constinit spares every access the TLS wrapper call of an extern thread_local.
extern constinit __attribute__((tls_model("initial-exec"))) thread_local bool t_busy;

// Sets t_busy for the scope so that any malloc reached from the allocator's
// own paths (init, reports, the stack unwinder) is served by glibc or the
// bootstrap buffer instead of recursing into the arena.
class BusyScope {
 public:
  BusyScope() noexcept : was_(t_busy) { t_busy = true; }
  ~BusyScope() { t_busy = was_; }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;

 private:
  bool was_;
};

Arena* init_slow() noexcept;

// The arena once initialised. Initialises on first use; returns nullptr while
// the arena cannot be used yet: before libc has set `environ`, or on the
// thread that is running the initialisation (its re-entrant calls). A bad
// GUARDARENA_OPTIONS value ends the process here with status 1.
inline Arena* arena() noexcept {
  if (g_state.load(std::memory_order_acquire) == InitState::kReady) [[likely]] {
    return g_arena;
  }
  return init_slow();
}

// The arena if it is ready, without initialising (free paths).
inline Arena* ready_arena() noexcept {
  return g_state.load(std::memory_order_acquire) == InitState::kReady ? g_arena : nullptr;
}

// Bootstrap buffer: a static bump allocator for the few allocations made
// before the arena exists. Never reused; free() of its blocks is a no-op.
// Returns nullptr when the buffer is full.
void* bootstrap_allocate(std::size_t size, std::size_t align) noexcept;
bool is_bootstrap(const void* p) noexcept;
// Requested size of a bootstrap block.
std::size_t bootstrap_size(const void* p) noexcept;
std::uint64_t bootstrap_count() noexcept;

// True when this allocation of `size` bytes should be guarded, by the options
// sample_rate, sample_after, min_size and max_size. Thread-safe; the sampling
// state is per thread.
bool should_guard_slow(std::size_t size) noexcept;
// Set at init: every allocation is guarded (no sampling option is in use).
extern bool g_guard_all;
inline bool should_guard(std::size_t size) noexcept {
  return g_guard_all || should_guard_slow(size);
}

// Writes the allocator statistics (print_stats=1, malloc_stats()) to the
// report fd.
void write_stats() noexcept;

#ifdef GUARDARENA_PRELOAD_FOR_TESTING
// Destroys the arena and returns every piece of state here to its initial
// value (bootstrap_test.cpp only; the library never tears down).
void reset_for_testing() noexcept;
#endif

}  // namespace guardarena::preload
