// The OS layer: the only code in guardarena that calls mmap, mprotect, madvise,
// munmap, prctl or sysconf. Everything above it sees a handful of verbs on
// page-aligned ranges and one of two guard backends (see backend_*.h).
//
// Failure rule (after hardened_malloc): ENOMEM comes back as a failure the
// caller handles; any other errno means a broken invariant and dies with a
// message through the raw writer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace guardarena::os {

// The calls below that change memory (protect_read_write() to
// guard_remove_ranges(), release()) leave errno as they found it, whatever
// their system calls did: they run inside malloc and free, which must not
// change errno when they succeed, and a failed attempt is often followed by
// a successful fallback.

// Page size from sysconf, cached after the first call. Async-signal-safe after
// the first call (a relaxed atomic load).
std::size_t page_size() noexcept;

// The size an alternate signal stack needs at least on this CPU
// (sysconf(_SC_SIGSTKSZ) where glibc has it: it grows with the register
// state the kernel saves, e.g. AVX-512; SIGSTKSZ otherwise). Cached like
// page_size().
std::size_t min_signal_stack_size() noexcept;

inline std::uintptr_t page_ceil(std::uintptr_t a) noexcept {
  return (a + page_size() - 1) & ~(page_size() - 1);
}

// Reserves `bytes` (page multiple) of PROT_NONE, MAP_NORESERVE address space
// aligned to `alignment` (power of two, >= page size). Returns nullptr when the
// kernel refuses (address space or RLIMIT_AS exhausted). Names the mapping
// "guardarena:<name>" where the kernel supports PR_SET_VMA_ANON_NAME.
void* reserve(std::size_t bytes, std::size_t alignment, const char* name) noexcept;

// Names a mapping "[anon:<name>]" in /proc/self/maps (PR_SET_VMA_ANON_NAME).
// false when the kernel lacks CONFIG_ANON_VMA_NAME; harmless either way.
bool name_mapping(void* base, std::size_t bytes, const char* name) noexcept;

// Read/write, MAP_NORESERVE anonymous memory for out-of-band metadata. Pages
// are committed on first touch only. nullptr on ENOMEM.
void* map_internal(std::size_t bytes, const char* name) noexcept;

// Returns a range obtained from reserve() or map_internal() to the kernel.
void release(void* base, std::size_t bytes) noexcept;

// Calls fn for every live range obtained from reserve() or map_internal():
// the library's own memory (heaps, metadata, depot), which the leak scan
// must neither read as roots (metadata holds every block's address) nor
// read at all (guard pages fault). Up to kMaxTrackedMappings at once; past
// that a mapping goes untracked (the leak scan may then find fewer leaks,
// never a false one).
inline constexpr std::size_t kMaxTrackedMappings = 1024;
void for_each_own_mapping(void (*fn)(std::uintptr_t lo, std::uintptr_t hi, void* ctx),
                          void* ctx) noexcept;

// Makes a page-aligned range read/write with mprotect. false on ENOMEM (the
// VMA limit or commit charge); dies on any other error.
bool protect_read_write(void* base, std::size_t bytes) noexcept;

// Replaces a page-aligned range with fresh PROT_NONE pages in one syscall
// (mmap MAP_FIXED): the contents are discarded, and the range merges with
// PROT_NONE neighbours into one VMA. false on ENOMEM.
bool replace_with_inaccessible(void* base, std::size_t bytes) noexcept;

// MADV_DONTNEED: the range stays accessible and reads back as zeros.
void discard(void* base, std::size_t bytes) noexcept;

// MADV_GUARD_INSTALL / MADV_GUARD_REMOVE (Linux 6.13+). Installing discards
// the pages' contents. false when the kernel does not support it (EINVAL) or
// on ENOMEM (page tables).
bool guard_install(void* base, std::size_t bytes) noexcept;
bool guard_remove(void* base, std::size_t bytes) noexcept;

// Most ranges open_many() takes in one call.
inline constexpr std::size_t kMaxBatch = 16;

// Removes the guard markers from `n` (<= kMaxBatch) ranges of `bytes` each
// and commits their pages, in two syscalls for the whole batch:
// process_madvise(MADV_GUARD_REMOVE, then MADV_POPULATE_WRITE) on the calling
// process (PIDFD_SELF, Linux 6.15+). Committing up front replaces a page
// fault per range on first touch. Where the kernel lacks PIDFD_SELF, or the
// batch fails part way, the ranges are opened one madvise each and left to
// fault in. Returns how many leading ranges are open: n, or fewer on ENOMEM.
std::size_t guard_remove_many(void* const* starts, std::size_t bytes, std::size_t n) noexcept;

// A page-aligned range, for the verbs that take many at once.
struct Range {
  void* base;
  std::size_t bytes;
};

// Install or remove the guard markers of `n` ranges (any number, any sizes)
// without committing anything: process_madvise on the calling process
// (PIDFD_SELF, Linux 6.15+), up to kRangesPerCall (the kernel's
// UIO_MAXIOV) ranges per syscall, so
// returning or reopening hundreds of slots costs a handful of calls. Where
// the kernel lacks it, or a call fails part way, the remaining ranges take
// one madvise each. Return how many leading ranges are done: n, or fewer on
// ENOMEM. Installing discards the ranges' contents; removed ranges read as
// zeros until written.
inline constexpr std::size_t kRangesPerCall = 1024;
std::size_t guard_install_ranges(const Range* ranges, std::size_t n) noexcept;
std::size_t guard_remove_ranges(const Range* ranges, std::size_t n) noexcept;

// What MADV_GUARD_INSTALL/REMOVE do here, probed once on a scratch page and
// cached: kAbsent, the kernel refuses the advice (before Linux 6.13);
// kIgnored, it is accepted but the page stays readable, or stays unreadable
// after the removal (an emulator or a sandbox that answers success and
// installs nothing); kWorks, a syscall reading the guarded page gets EFAULT
// and reads it again once the guard is removed. No signal is taken.
enum class GuardSupport : std::uint8_t { kAbsent, kIgnored, kWorks };
GuardSupport guard_support() noexcept;
const char* guard_support_name(GuardSupport s) noexcept;
// guard_support() == kWorks: the only state in which guard markers are used.
bool guard_regions_supported() noexcept;

// vm.max_map_count (65530 when unreadable) and the number of mappings the
// process has now (lines of /proc/self/maps). Both read files with raw
// syscalls and a stack buffer: no allocation.
std::size_t max_map_count() noexcept;
std::size_t count_mappings() noexcept;

// Reads up to `cap` bytes of the file at `path` into `buf` with raw syscalls
// (no stdio, no allocation): the length read, 0 when it cannot be opened.
std::size_t read_small_file(const char* path, char* buf, std::size_t cap) noexcept;

// Number of syscalls this layer has made (all threads, relaxed). Benchmarks
// read it to report syscalls per operation.
std::uint64_t syscall_count() noexcept;

}  // namespace guardarena::os
