// Linux implementation of the OS verbs in os_linux.h. The reasons behind each
// syscall choice sit next to it; nothing here allocates through malloc, so the
// preload library can call it before and during its own initialisation.
#include "os/os_linux.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>

#include "os/check.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

namespace guardarena::os {
std::size_t min_signal_stack_size() noexcept {
  static std::atomic<std::size_t> cached{0};
  std::size_t n = cached.load(std::memory_order_relaxed);
  if (n == 0) {
    long v = -1;
#ifdef _SC_SIGSTKSZ
    v = ::sysconf(_SC_SIGSTKSZ);
#endif
    n = v > 0 ? static_cast<std::size_t>(v) : static_cast<std::size_t>(SIGSTKSZ);
    cached.store(n, std::memory_order_relaxed);
  }
  return n;
}

namespace {

// Restores errno at the end of the scope (see os_linux.h).
class KeepErrno {
 public:
  KeepErrno() noexcept : saved_(errno) {}
  ~KeepErrno() { errno = saved_; }
  KeepErrno(const KeepErrno&) = delete;
  KeepErrno& operator=(const KeepErrno&) = delete;

 private:
  int saved_;
};

std::atomic<std::size_t> g_page_size{0};
std::atomic<std::uint64_t> g_syscalls{0};
// 0 = not probed, 1 = supported, 2 = unsupported.
std::atomic<int> g_guard_probe{0};

// process_madvise on the calling process without a pidfd (PIDFD_SELF_THREAD,
// Linux 6.15+): no descriptor a program could close, and a forked child
// targets itself, never its parent.
constexpr int kPidfdSelf = -10000;
std::atomic<bool> g_batch_unsupported{false};

void count_syscall() noexcept {
  g_syscalls.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

std::size_t read_small_file(const char* path, char* buf, std::size_t cap) noexcept {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::size_t len = 0;
  while (len < cap) {
    ssize_t n = ::read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return len;
}

bool name_mapping(void* base, std::size_t bytes, const char* name) noexcept {
  if (name == nullptr) return false;
  // Best effort: kernels without CONFIG_ANON_VMA_NAME answer EINVAL and the
  // mapping is simply unnamed in /proc/self/maps.
  return ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, reinterpret_cast<unsigned long>(base), bytes,
                 reinterpret_cast<unsigned long>(name)) == 0;
}

std::size_t page_size() noexcept {
  std::size_t p = g_page_size.load(std::memory_order_relaxed);
  if (p == 0) {
    long v = ::sysconf(_SC_PAGESIZE);
    p = v > 0 ? static_cast<std::size_t>(v) : 4096;  // POSIX guarantees > 0; keep a sane floor
    g_page_size.store(p, std::memory_order_relaxed);
  }
  return p;
}

namespace {

struct TrackedMapping {
  std::atomic<std::uintptr_t> lo{0};  // 0 = free entry
  std::atomic<std::uintptr_t> hi{0};  // 0 while being filled in
};
TrackedMapping g_own_mappings[kMaxTrackedMappings];

void track(void* base, std::size_t bytes) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(base);
  for (TrackedMapping& m : g_own_mappings) {
    std::uintptr_t expected = 0;
    if (m.lo.load(std::memory_order_relaxed) == 0 &&
        m.lo.compare_exchange_strong(expected, lo, std::memory_order_acq_rel)) {
      m.hi.store(lo + bytes, std::memory_order_release);
      return;
    }
  }
}

void untrack(void* base) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(base);
  for (TrackedMapping& m : g_own_mappings) {
    if (m.lo.load(std::memory_order_acquire) == lo) {
      m.hi.store(0, std::memory_order_relaxed);
      m.lo.store(0, std::memory_order_release);
      return;
    }
  }
}

}  // namespace

void for_each_own_mapping(void (*fn)(std::uintptr_t lo, std::uintptr_t hi, void* ctx),
                          void* ctx) noexcept {
  for (const TrackedMapping& m : g_own_mappings) {
    const std::uintptr_t lo = m.lo.load(std::memory_order_acquire);
    const std::uintptr_t hi = m.hi.load(std::memory_order_acquire);
    if (lo != 0 && hi > lo) fn(lo, hi, ctx);
  }
}

void* reserve(std::size_t bytes, std::size_t alignment, const char* name) noexcept {
  GUARDARENA_CHECK(bytes % page_size() == 0, "reserve: size is not a page multiple");
  GUARDARENA_CHECK(alignment >= page_size() && (alignment & (alignment - 1)) == 0,
                   "reserve: alignment must be a power of two >= page size");
  // Over-reserve by the alignment and trim both ends: the kernel has no
  // aligned mmap, and the trimmed ends go straight back.
  std::size_t padded = bytes + (alignment > page_size() ? alignment : 0);
  if (padded < bytes) return nullptr;
  count_syscall();
  void* raw =
      ::mmap(nullptr, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    GUARDARENA_CHECK(errno == ENOMEM, "reserve: mmap failed with an error other than ENOMEM");
    return nullptr;
  }
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  std::uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
  if (aligned > start) {
    count_syscall();
    ::munmap(raw, aligned - start);
  }
  std::uintptr_t end = start + padded;
  if (end > aligned + bytes) {
    count_syscall();
    ::munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
  }
  name_mapping(reinterpret_cast<void*>(aligned), bytes, name);
  track(reinterpret_cast<void*>(aligned), bytes);
  return reinterpret_cast<void*>(aligned);
}

void* map_internal(std::size_t bytes, const char* name) noexcept {
  bytes = page_ceil(bytes);
  count_syscall();
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    GUARDARENA_CHECK(errno == ENOMEM, "map_internal: mmap failed with an error other than ENOMEM");
    return nullptr;
  }
  name_mapping(p, bytes, name);
  track(p, bytes);
  return p;
}

void release(void* base, std::size_t bytes) noexcept {
  const KeepErrno keep_errno;
  if (base == nullptr || bytes == 0) return;
  untrack(base);
  count_syscall();
  int rc = ::munmap(base, page_ceil(bytes));
  GUARDARENA_CHECK(rc == 0, "release: munmap failed");
}

bool protect_read_write(void* base, std::size_t bytes) noexcept {
  const KeepErrno keep_errno;
  count_syscall();
  if (::mprotect(base, bytes, PROT_READ | PROT_WRITE) == 0) return true;
  GUARDARENA_CHECK(errno == ENOMEM,
                   "protect_read_write: mprotect failed with an error other than ENOMEM");
  return false;
}

bool replace_with_inaccessible(void* base, std::size_t bytes) noexcept {
  const KeepErrno keep_errno;
  // One mmap(MAP_FIXED) both discards the pages and drops access, and the new
  // PROT_NONE range merges with its PROT_NONE neighbours, so a closed slot
  // gives its VMAs back. mprotect + MADV_DONTNEED would take two syscalls.
  count_syscall();
  void* p = ::mmap(base, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
  if (p != MAP_FAILED) return true;
  GUARDARENA_CHECK(errno == ENOMEM,
                   "replace_with_inaccessible: mmap failed with an error other than ENOMEM");
  return false;
}

void discard(void* base, std::size_t bytes) noexcept {
  const KeepErrno keep_errno;
  count_syscall();
  int rc = ::madvise(base, bytes, MADV_DONTNEED);
  GUARDARENA_CHECK(rc == 0 || errno == ENOMEM, "discard: madvise(MADV_DONTNEED) failed");
}

bool guard_install(void* base, std::size_t bytes) noexcept {
  const KeepErrno keep_errno;
  for (;;) {
    count_syscall();
    if (::madvise(base, bytes, MADV_GUARD_INSTALL) == 0) return true;
    // EINTR/EAGAIN: the kernel was interrupted while zapping pages; retrying
    // is what the man page asks for.
    if (errno == EINTR || errno == EAGAIN) continue;
    GUARDARENA_CHECK(errno == ENOMEM || errno == EINVAL,
                     "guard_install: madvise failed unexpectedly");
    return false;
  }
}

bool guard_remove(void* base, std::size_t bytes) noexcept {
  const KeepErrno keep_errno;
  for (;;) {
    count_syscall();
    if (::madvise(base, bytes, MADV_GUARD_REMOVE) == 0) return true;
    if (errno == EINTR || errno == EAGAIN) continue;
    GUARDARENA_CHECK(errno == ENOMEM || errno == EINVAL,
                     "guard_remove: madvise failed unexpectedly");
    return false;
  }
}

std::size_t guard_remove_many(void* const* starts, std::size_t bytes, std::size_t n) noexcept {
  const KeepErrno keep_errno;
  GUARDARENA_CHECK(n <= kMaxBatch, "guard_remove_many: batch too large");
  iovec iov[kMaxBatch];
  for (std::size_t i = 0; i < n; ++i) iov[i] = iovec{starts[i], bytes};
  if (!g_batch_unsupported.load(std::memory_order_relaxed)) {
    count_syscall();
    long r = ::syscall(SYS_process_madvise, kPidfdSelf, iov, n, MADV_GUARD_REMOVE, 0u);
    if (r >= 0 && static_cast<std::size_t>(r) == n * bytes) {
      // Best effort: a range that is not committed here faults in on first
      // touch, exactly as without the batch.
      count_syscall();
      (void)::syscall(SYS_process_madvise, kPidfdSelf, iov, n, MADV_POPULATE_WRITE, 0u);
      return n;
    }
    // No PIDFD_SELF (EBADF before 6.15) or no process_madvise for this
    // advice: stop trying. ENOMEM, EINTR or a partial batch: the loop below
    // finishes the job (removing a marker that is already gone is a no-op).
    if (r < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM))
      g_batch_unsupported.store(true, std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!guard_remove(starts[i], bytes)) return i;
  }
  return n;
}

namespace {

// The kernel reads a Range array as its iovec array.
static_assert(sizeof(Range) == sizeof(iovec) &&
              offsetof(Range, base) == offsetof(iovec, iov_base) &&
              offsetof(Range, bytes) == offsetof(iovec, iov_len));

// One process_madvise(advice) over `n` (<= kRangesPerCall) ranges; false
// when the kernel did not advise all of them (the caller then goes range by
// range: installing or removing a marker twice is harmless).
bool advise_ranges_at_once(const Range* ranges, std::size_t n, int advice) noexcept {
  if (g_batch_unsupported.load(std::memory_order_relaxed)) return false;
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) total += ranges[i].bytes;
  count_syscall();
  const long r = ::syscall(SYS_process_madvise, kPidfdSelf, ranges, n, advice, 0u);
  if (r >= 0 && static_cast<std::size_t>(r) == total) return true;
  if (r < 0 && (errno == EBADF || errno == EINVAL || errno == ENOSYS || errno == EPERM))
    g_batch_unsupported.store(true, std::memory_order_relaxed);
  return false;
}

template <bool (*kOne)(void*, std::size_t) noexcept>
std::size_t advise_ranges(const Range* ranges, std::size_t n, int advice) noexcept {
  const KeepErrno keep_errno;
  std::size_t done = 0;
  while (done < n) {
    const std::size_t k = n - done < kRangesPerCall ? n - done : kRangesPerCall;
    if (!advise_ranges_at_once(ranges + done, k, advice)) {
      for (std::size_t i = 0; i < k; ++i) {
        if (!kOne(ranges[done + i].base, ranges[done + i].bytes)) return done + i;
      }
    }
    done += k;
  }
  return done;
}

}  // namespace

std::size_t guard_install_ranges(const Range* ranges, std::size_t n) noexcept {
  return advise_ranges<guard_install>(ranges, n, MADV_GUARD_INSTALL);
}

std::size_t guard_remove_ranges(const Range* ranges, std::size_t n) noexcept {
  return advise_ranges<guard_remove>(ranges, n, MADV_GUARD_REMOVE);
}

namespace {

// Whether a syscall can read the byte at `p`: it reports EFAULT for a page
// that is really inaccessible, where a load from user space would fault.
// Proves a guard without taking a signal. The write is a raw system call:
// write() may be wrapped by the program or another preloaded library, and a
// wrapper that reads the buffer itself (to copy or log it) would fault on
// the guard this probes.
bool kernel_can_read(const void* p) noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  const long n = ::syscall(SYS_write, fds[1], p, 1);
  ::close(fds[0]);
  ::close(fds[1]);
  return n == 1;
}

GuardSupport probe_guard_support() noexcept {
  const std::size_t ps = page_size();
  void* scratch = ::mmap(nullptr, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (scratch == MAP_FAILED) return GuardSupport::kAbsent;
  static_cast<volatile char*>(scratch)[0] = 1;
  GuardSupport result = GuardSupport::kAbsent;
  // Old kernels answer EINVAL for an unknown advice value. A layer that
  // answers success without installing anything (an emulator, a sandbox)
  // leaves the page readable: that is no guard at all.
  if (::madvise(scratch, ps, MADV_GUARD_INSTALL) == 0) {
    const bool trapped = !kernel_can_read(scratch);
    const bool removed = ::madvise(scratch, ps, MADV_GUARD_REMOVE) == 0 && kernel_can_read(scratch);
    result = trapped && removed ? GuardSupport::kWorks : GuardSupport::kIgnored;
  }
  ::munmap(scratch, ps);
  return result;
}

}  // namespace

GuardSupport guard_support() noexcept {
  int state = g_guard_probe.load(std::memory_order_acquire);
  if (state == 0) {
    const KeepErrno keep_errno;
    state = static_cast<int>(probe_guard_support()) + 1;
    g_guard_probe.store(state, std::memory_order_release);
  }
  return static_cast<GuardSupport>(state - 1);
}

const char* guard_support_name(GuardSupport s) noexcept {
  switch (s) {
    case GuardSupport::kWorks:
      return "works";
    case GuardSupport::kIgnored:
      return "accepted but not enforced";
    case GuardSupport::kAbsent:
      break;
  }
  return "absent";
}

bool guard_regions_supported() noexcept {
  return guard_support() == GuardSupport::kWorks;
}

std::size_t max_map_count() noexcept {
  char buf[64];
  std::size_t n = read_small_file("/proc/sys/vm/max_map_count", buf, sizeof buf);
  std::size_t v = 0;
  bool any = false;
  for (std::size_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) {
    v = v * 10 + static_cast<std::size_t>(buf[i] - '0');
    any = true;
  }
  return any ? v : 65530;  // the kernel's default (DEFAULT_MAX_MAP_COUNT)
}

std::size_t count_mappings() noexcept {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[4096];
  std::size_t lines = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  }
  ::close(fd);
  return lines;
}

std::uint64_t syscall_count() noexcept {
  return g_syscalls.load(std::memory_order_relaxed);
}

}  // namespace guardarena::os
