// The exported surface of libguardarena.so: glibc 2.36's malloc family and
// the 20 operator new/delete forms of libstdc++, mapped onto the arena
// (size/alignment validation, overflow-checked calloc, realloc as
// allocate-copy-free) or, when sampling leaves an allocation unguarded, onto
// glibc through __libc_malloc and friends. Exports nothing else.
//
// The C entry points never throw and never abort on an impossible request:
// NULL with errno (ENOMEM, EINVAL). Only bugs (double or invalid free,
// mismatched deallocation, damaged canaries) abort, through report/.
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <new>

#include "init.h"
#include "os/os_linux.h"
#include "process_hooks.h"
#include "report/report.h"
#include "sampling.h"

#define GUARDARENA_EXPORT extern "C" __attribute__((visibility("default")))
#define GUARDARENA_EXPORT_CXX __attribute__((visibility("default")))

// Declared by no header since glibc 2.26, still exported (compat) for old
// binaries, which would otherwise reach glibc's free with our pointers.
extern "C" void cfree(void* p) noexcept;

namespace guardarena::preload {
namespace {

// alignof(max_align_t) on x86-64 and AArch64: what glibc's malloc returns.
constexpr std::size_t kMallocAlign = 16;
// The alignment malloc, calloc, realloc and plain new ask for: none of their
// own, so the `alignment` option (16 by default; 1 = byte-exact) decides.
constexpr std::size_t kDefaultAlign = 1;

// Before glibc is asked, not after it answered: take_unguarded() relies on
// the flag being set once this thread was sent to glibc by the sampler, even
// if that first request failed.
void note_delegating() noexcept {
  if (!g_delegated.load(std::memory_order_relaxed)) {
    g_delegated.store(true, std::memory_order_relaxed);
  }
}

void* libc_allocate(std::size_t size, std::size_t align, bool zero) noexcept {
  note_delegating();
  void* p = nullptr;
  if (align <= kMallocAlign) {
    p = zero ? __libc_calloc(1, size) : __libc_malloc(size);
  } else {
    p = __libc_memalign(align, size);
    if (p != nullptr && zero) std::memset(p, 0, size);
  }
  // A shared counter bumped on every unguarded allocation would be the
  // sampled path's main cost (a contended cache line): count only on request.
  if (p != nullptr && g_options.print_stats)
    g_delegated_count.value.fetch_add(1, std::memory_order_relaxed);
  return p;
}

// glibc >= 2.33 keeps errno in free() itself (BZ #17924); older ones need it
// saved here, as free() must not change it.
void libc_free(void* p) noexcept {
#if __GLIBC_PREREQ(2, 33)
  __libc_free(p);
#else
  int saved_errno = errno;
  __libc_free(p);
  errno = saved_errno;
#endif
}

// Requests that cannot go to the arena: before it exists (bootstrap buffer)
// or re-entrant calls from the allocator's own paths (glibc).
[[gnu::noinline]] void* early_allocate(std::size_t size, std::size_t align, bool zero) noexcept {
  if (ready_arena() == nullptr) {
    if (void* p = bootstrap_allocate(size, align)) return p;
  }
  return libc_allocate(size, align, zero);
}

// Frees that arrive while this thread is inside the arena: a signal handler
// calling free() while the interrupted code holds a class lock (or is halfway
// through a thread-cache update) would deadlock or corrupt it. They wait here
// and run as soon as the interrupted operation returns. Allocations in that
// window go to glibc instead (busy(), see allocate()).
struct DeferredFree {
  void* p;
  std::size_t size;
  std::size_t align;
  AllocKind kind;
};
constexpr int kMaxDeferred = 64;
constinit
    __attribute__((tls_model("initial-exec"))) thread_local DeferredFree t_deferred[kMaxDeferred];
constinit __attribute__((tls_model("initial-exec"))) thread_local volatile int t_deferred_count = 0;
std::atomic<std::uint64_t> g_deferred_dropped{0};

void deallocate_guarded(void* p, std::size_t size, std::size_t align, AllocKind kind,
                        void* entry) noexcept;

void defer_free(void* p, std::size_t size, std::size_t align, AllocKind kind) noexcept {
  int n = t_deferred_count;
  if (n == kMaxDeferred) {
    // Over 64 frees from nested signal handlers in one operation: keeping
    // the block is safe, freeing it now is not.
    g_deferred_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  t_deferred[n] = DeferredFree{p, size, align, kind};
  t_deferred_count = n + 1;
}

void run_deferred_frees() noexcept {
  while (t_deferred_count > 0) {
    int n = t_deferred_count - 1;
    DeferredFree d = t_deferred[n];
    t_deferred_count = n;
    deallocate_guarded(d.p, d.size, d.align, d.kind, __builtin_frame_address(0));
  }
}

// `entry`: see BusyScope. Inlined into each entry point: one call fewer on
// every guarded allocation.
[[gnu::always_inline]] inline void* guarded_allocate(Arena* a, std::size_t size, std::size_t align,
                                                     AllocKind kind, bool zero,
                                                     void* entry) noexcept {
  if (align < g_options.alignment) align = g_options.alignment;  // a minimum for every block
  void* p = nullptr;
  {
    BusyScope scope(entry);
    p = a->allocate(size, align, kind, zero);  // leaves errno alone when it succeeds
  }
  if (t_deferred_count != 0 && !busy()) [[unlikely]]
    run_deferred_frees();  // keeps errno too (deallocate_guarded)
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// Every allocation entry point ends here. `align` is a power of two
// (kDefaultAlign for malloc and plain new). Inlined, so that the frame it
// hands on is its caller's: the exported function's when that calls it
// directly (malloc, calloc, operator new...); otherwise a shim frame that
// the capture trims.
[[gnu::always_inline]] inline void* allocate(std::size_t size, std::size_t align, AllocKind kind,
                                             bool zero) noexcept {
  if (busy()) [[unlikely]]
    return early_allocate(size, align, zero);
  Arena* a = arena();
  if (a == nullptr) [[unlikely]]
    return early_allocate(size, align, zero);
  if (!should_guard(size)) return libc_allocate(size, align, zero);
  void* p = guarded_allocate(a, size, align, kind, zero, __builtin_frame_address(0));
  // Not a tail call: the frame just handed on must stay this one. (On
  // x86-64 a sibling call would put the callee's record in the same place;
  // AArch64 places records by frame size.)
  asm volatile("" ::: "memory");
  return p;
}

[[noreturn, gnu::noinline]] void report_foreign(void* p, AllocKind kind) noexcept {
  report::Report r;
  r.kind = ErrorKind::kInvalidFree;
  r.address = reinterpret_cast<std::uintptr_t>(p);
  r.dealloc_kind = static_cast<std::uint8_t>(kind);
  report::report_and_abort(r);
}

// Every deallocation entry point ends here. size/align 0 = unknown (free).
// A glibc block (sampled out, re-entrant) goes straight back to glibc: its
// size and kind were never recorded, so there is nothing to check.
[[gnu::always_inline]] inline void deallocate(void* p, std::size_t size, std::size_t align,
                                              AllocKind kind) noexcept {
  if (is_glibc_block(p)) {
    libc_free(p);
    return;
  }
  deallocate_guarded(p, size, align, kind, __builtin_frame_address(0));
  asm volatile("" ::: "memory");  // not a tail call (see allocate())
}

// `entry`: see BusyScope. Inlined into each entry point, as
// guarded_allocate().
[[gnu::always_inline]] inline void deallocate_guarded(void* p, std::size_t size, std::size_t align,
                                                      AllocKind kind, void* entry) noexcept {
  if (p == nullptr || is_bootstrap(p)) return;
  // free() must leave errno alone: the arena does, and libc_free() does.
  if (Arena* a = ready_arena()) {
    if (busy() && a->owns(p)) [[unlikely]] {
      defer_free(p, size, align, kind);  // re-entered from a signal handler
      return;
    }
    Arena::FreeResult r;
    {
      BusyScope scope(entry);
      r = a->deallocate(p, size, align, kind);
    }
    if (t_deferred_count != 0 && !busy()) [[unlikely]]
      run_deferred_frees();
    if (r == Arena::FreeResult::kFreed) return;
    // Not the arena's. While no allocation was ever left to glibc, it cannot
    // be a heap block at all: report it here instead of letting glibc abort
    // with "free(): invalid pointer" and no context.
    if (!g_delegated.load(std::memory_order_relaxed)) report_foreign(p, kind);
    open_free_shortcut();
  }
  libc_free(p);
}

// glibc's malloc_usable_size for its own blocks (sampled-out and fallback
// ones), resolved on first use. dlsym may allocate: the busy flag sends that
// to glibc, never back here.
using UsableSizeFn = std::size_t (*)(void*) noexcept;
std::atomic<UsableSizeFn> g_libc_usable_size{nullptr};

std::size_t libc_usable_size(void* p) noexcept {
  UsableSizeFn fn = g_libc_usable_size.load(std::memory_order_acquire);
  if (fn == nullptr) {
    BusyScope scope(__builtin_frame_address(0));
    int saved_errno = errno;
    fn = reinterpret_cast<UsableSizeFn>(::dlsym(RTLD_NEXT, "malloc_usable_size"));
    errno = saved_errno;
    if (fn == nullptr) return 0;
    g_libc_usable_size.store(fn, std::memory_order_release);
  }
  return fn(p);
}

void* move_block(void* old_p, std::size_t old_size, void* new_p, std::size_t new_size) noexcept {
  std::memcpy(new_p, old_p, old_size < new_size ? old_size : new_size);
  return new_p;
}

void* reallocate(void* p, std::size_t size) noexcept {
  if (p == nullptr) return allocate(size, kDefaultAlign, AllocKind::kMalloc, false);
  if (size == 0) {
    // glibc frees and returns NULL (C23 leaves it undefined).
    deallocate(p, 0, 0, AllocKind::kMalloc);
    return nullptr;
  }
  if (is_bootstrap(p)) {
    void* q = allocate(size, kDefaultAlign, AllocKind::kMalloc, false);
    return q != nullptr ? move_block(p, bootstrap_size(p), q, size) : nullptr;
  }
  Arena* a = ready_arena();
  if (a == nullptr) return __libc_realloc(p, size);  // nothing is guarded yet: glibc's
  std::size_t old_size = 0;
  if (a->owns(p)) {
    BlockInfo b;
    if (!a->block_info(p, b) || b.alloc_kind != static_cast<std::uint8_t>(AllocKind::kMalloc)) {
      // Freed, interior, or not from malloc: deallocate() reports it.
      deallocate(p, 0, 0, AllocKind::kMalloc);
      errno = EINVAL;
      return nullptr;
    }
    old_size = b.size;
  } else if (a->owns_block(p)) {
    old_size = libc_usable_size(p);  // an unguarded fallback block of the arena
  } else {
    if (!g_delegated.load(std::memory_order_relaxed)) report_foreign(p, AllocKind::kMalloc);
    if (busy() || !should_guard(size)) return __libc_realloc(p, size);
    // A glibc block chosen by the sampler: move it under guard.
    void* q = guarded_allocate(a, size, kDefaultAlign, AllocKind::kMalloc, false,
                               __builtin_frame_address(0));
    if (q == nullptr) return nullptr;
    move_block(p, libc_usable_size(p), q, size);
    libc_free(p);
    return q;
  }
  // Always move, growing or shrinking: a stale pointer to the old block then
  // faults (full mode) instead of silently reading the new one.
  void* q = allocate(size, kDefaultAlign, AllocKind::kMalloc, false);
  if (q == nullptr) return nullptr;
  move_block(p, old_size, q, size);
  deallocate(p, 0, 0, AllocKind::kMalloc);
  return q;
}

// realloc without the slow path: a glibc block (or none) that the sampler
// leaves with glibc. Takes the sampler's turn only when it answers true.
[[gnu::always_inline]] inline bool libc_reallocate_fast(void* p, std::size_t size,
                                                        void*& out) noexcept {
  if (size == 0 || (p != nullptr && !is_glibc_block(p)) || !take_unguarded()) return false;
  out = p == nullptr ? __libc_malloc(size) : __libc_realloc(p, size);
  return true;
}

void* aligned(std::size_t align, std::size_t size) noexcept {
  return allocate(size, align, AllocKind::kMalloc, false);
}

// operator new: like libstdc++, call the new_handler until it gives up.
void* new_impl(std::size_t size, std::size_t align, AllocKind kind) {
  if (!std::has_single_bit(align)) throw std::bad_alloc();
  for (;;) {
    if (void* p = allocate(size, align, kind, false)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* new_nothrow(std::size_t size, std::size_t align, AllocKind kind) noexcept {
  try {
    return new_impl(size, align, kind);
  } catch (...) {
    return nullptr;
  }
}

std::size_t align_of(std::align_val_t a) noexcept {
  return static_cast<std::size_t>(a);
}

}  // namespace
}  // namespace guardarena::preload

using guardarena::AllocKind;
using guardarena::Arena;
using namespace guardarena::preload;

// ---- C: glibc's malloc family --------------------------------------------

GUARDARENA_EXPORT void* malloc(std::size_t size) noexcept {
  if (take_unguarded()) return __libc_malloc(size);
  return allocate(size, kDefaultAlign, AllocKind::kMalloc, false);
}

GUARDARENA_EXPORT void free(void* p) noexcept {
  deallocate(p, 0, 0, AllocKind::kMalloc);
}

GUARDARENA_EXPORT void cfree(void* p) noexcept {
  deallocate(p, 0, 0, AllocKind::kMalloc);
}

GUARDARENA_EXPORT void* calloc(std::size_t n, std::size_t size) noexcept {
  std::size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (take_unguarded()) return __libc_calloc(1, total);
  return allocate(total, kDefaultAlign, AllocKind::kMalloc, true);
}

GUARDARENA_EXPORT void* realloc(void* p, std::size_t size) noexcept {
  void* q = nullptr;
  if (libc_reallocate_fast(p, size, q)) return q;
  return reallocate(p, size);
}

GUARDARENA_EXPORT void* reallocarray(void* p, std::size_t n, std::size_t size) noexcept {
  std::size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* q = nullptr;
  if (libc_reallocate_fast(p, total, q)) return q;
  return reallocate(p, total);
}

GUARDARENA_EXPORT int posix_memalign(void** out, std::size_t align, std::size_t size) noexcept {
  if (align < sizeof(void*) || !std::has_single_bit(align)) return EINVAL;
  int saved_errno = errno;  // POSIX: the result is the return value; errno is left alone
  void* p = aligned(align, size);
  errno = saved_errno;
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

// C11 allows an implementation to reject an alignment that is not a power of
// two (DR 460); glibc does from 2.38 on. Rejecting it is the useful answer.
GUARDARENA_EXPORT void* aligned_alloc(std::size_t align, std::size_t size) noexcept {
  if (!std::has_single_bit(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return aligned(align, size);
}

// memalign keeps glibc's leniency: it predates the C rules and old callers
// pass e.g. 24; glibc rounds up to a power of two.
GUARDARENA_EXPORT void* memalign(std::size_t align, std::size_t size) noexcept {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return nullptr;
  }
  if (!std::has_single_bit(align)) align = std::size_t{1} << (64 - __builtin_clzll(align));
  return aligned(align, size);
}

GUARDARENA_EXPORT void* valloc(std::size_t size) noexcept {
  return aligned(guardarena::os::page_size(), size);
}

GUARDARENA_EXPORT void* pvalloc(std::size_t size) noexcept {
  std::size_t page = guardarena::os::page_size();
  if (size > SIZE_MAX - page) {
    errno = ENOMEM;
    return nullptr;
  }
  return aligned(page, (size + page - 1) & ~(page - 1));
}

// The requested size, not the slot's: writing past it is the overflow this
// library exists to catch, so no caller may be told it can.
GUARDARENA_EXPORT std::size_t malloc_usable_size(void* p) noexcept {
  if (p == nullptr) return 0;
  if (is_bootstrap(p)) return bootstrap_size(p);
  Arena* a = ready_arena();
  if (a != nullptr && a->owns(p)) return a->usable_size(p);
  return libc_usable_size(p);
}

// Tuning knobs of glibc's allocator do not apply: accept and ignore them.
GUARDARENA_EXPORT int mallopt(int, int) noexcept {
  return 1;
}

// Returns quarantined slots to reuse; their pages were returned already.
GUARDARENA_EXPORT int malloc_trim(std::size_t) noexcept {
  Arena* a = ready_arena();
  if (a == nullptr) return 0;
  bool had = a->stats().quarantined_blocks != 0;
  a->flush_quarantine();
  return had ? 1 : 0;
}

namespace {

template <class Info, class Field>
Info make_mallinfo() noexcept {
  Info mi{};
  if (Arena* a = ready_arena()) {
    guardarena::ArenaStats s = a->stats();
    // In use = live guarded bytes; "free" = bytes held in quarantine.
    mi.ordblks = static_cast<Field>(s.live_blocks);
    mi.uordblks = static_cast<Field>(s.live_bytes);
    mi.fordblks = static_cast<Field>(s.quarantined_bytes);
    mi.arena = static_cast<Field>(s.live_bytes + s.quarantined_bytes);
  }
  return mi;
}

}  // namespace

GUARDARENA_EXPORT struct mallinfo2 mallinfo2() noexcept {
  return make_mallinfo<struct mallinfo2, std::size_t>();
}

GUARDARENA_EXPORT struct mallinfo mallinfo() noexcept {
  return make_mallinfo<struct mallinfo, int>();
}

GUARDARENA_EXPORT void malloc_stats() noexcept {
  write_stats();
}

GUARDARENA_EXPORT int malloc_info(int options, FILE* fp) noexcept {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  guardarena::ArenaStats s{};
  if (Arena* a = ready_arena()) s = a->stats();
  fprintf(
      fp,
      "<malloc version=\"1\">\n<guardarena backend=\"%s\" live_blocks=\"%llu\" live_bytes=\"%llu\" "
      "quarantined_blocks=\"%llu\" quarantined_bytes=\"%llu\"/>\n</malloc>\n",
      s.backend, static_cast<unsigned long long>(s.live_blocks),
      static_cast<unsigned long long>(s.live_bytes),
      static_cast<unsigned long long>(s.quarantined_blocks),
      static_cast<unsigned long long>(s.quarantined_bytes));
  return 0;
}

// For the benchmarks: syscalls made by the OS layer so far (all threads).
GUARDARENA_EXPORT unsigned long long guardarena_syscall_count(void) noexcept {
  return guardarena::os::syscall_count();
}

// ---- C++: the 20 replaceable operator new/delete forms -------------------

// The four forms without an alignment take the sampler's fast path; a NULL
// from glibc goes on to new_impl(), which runs the new_handler loop.
GUARDARENA_EXPORT_CXX void* operator new(std::size_t size) {
  if (take_unguarded()) {
    if (void* p = __libc_malloc(size)) return p;
  }
  return new_impl(size, kDefaultAlign, AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void* operator new[](std::size_t size) {
  if (take_unguarded()) {
    if (void* p = __libc_malloc(size)) return p;
  }
  return new_impl(size, kDefaultAlign, AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (take_unguarded()) {
    if (void* p = __libc_malloc(size)) return p;
  }
  return new_nothrow(size, kDefaultAlign, AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  if (take_unguarded()) {
    if (void* p = __libc_malloc(size)) return p;
  }
  return new_nothrow(size, kDefaultAlign, AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void* operator new(std::size_t size, std::align_val_t al) {
  return new_impl(size, align_of(al), AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void* operator new[](std::size_t size, std::align_val_t al) {
  return new_impl(size, align_of(al), AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void* operator new(std::size_t size, std::align_val_t al,
                                         const std::nothrow_t&) noexcept {
  return new_nothrow(size, align_of(al), AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void* operator new[](std::size_t size, std::align_val_t al,
                                           const std::nothrow_t&) noexcept {
  return new_nothrow(size, align_of(al), AllocKind::kNewArray);
}

GUARDARENA_EXPORT_CXX void operator delete(void* p) noexcept {
  deallocate(p, 0, 0, AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void operator delete[](void* p) noexcept {
  deallocate(p, 0, 0, AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void operator delete(void* p, const std::nothrow_t&) noexcept {
  deallocate(p, 0, 0, AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void operator delete[](void* p, const std::nothrow_t&) noexcept {
  deallocate(p, 0, 0, AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void operator delete(void* p, std::size_t size) noexcept {
  deallocate(p, size, 0, AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void operator delete[](void* p, std::size_t size) noexcept {
  deallocate(p, size, 0, AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void operator delete(void* p, std::align_val_t al) noexcept {
  deallocate(p, 0, align_of(al), AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void operator delete[](void* p, std::align_val_t al) noexcept {
  deallocate(p, 0, align_of(al), AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void operator delete(void* p, std::align_val_t al,
                                           const std::nothrow_t&) noexcept {
  deallocate(p, 0, align_of(al), AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void operator delete[](void* p, std::align_val_t al,
                                             const std::nothrow_t&) noexcept {
  deallocate(p, 0, align_of(al), AllocKind::kNewArray);
}
GUARDARENA_EXPORT_CXX void operator delete(void* p, std::size_t size,
                                           std::align_val_t al) noexcept {
  deallocate(p, size, align_of(al), AllocKind::kNew);
}
GUARDARENA_EXPORT_CXX void operator delete[](void* p, std::size_t size,
                                             std::align_val_t al) noexcept {
  deallocate(p, size, align_of(al), AllocKind::kNewArray);
}
