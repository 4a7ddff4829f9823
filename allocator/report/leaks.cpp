// Leak detection at exit (detect_leaks=1): a conservative reachability scan
// in the spirit of LeakSanitizer. Roots are the writable segments of every
// loaded module and every other writable private mapping but the library's
// own (the glibc heap and thread arenas, every thread's stack and static TLS),
// and the registers of every thread; every word that points into (or inside)
// a live block marks it reachable, and reachable blocks are scanned in turn.
// What is left is leaked: "direct" when nothing points to it, "indirect" when
// only other leaked blocks do. Leaks are grouped by allocation stack, largest
// first. Runs at exit, where threads the program did not join may still run:
// they are paused for the scan (os/world_stop.h), and their registers read
// from their signal contexts. A thread that cannot be paused (it blocks the
// signal) may still free blocks meanwhile: block contents are read through
// process_vm_readv, and a block must be live from the snapshot to the end to
// be judged. Allocates nothing through malloc (working memory comes from
// os::map_internal).
#include "report/leaks.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "os/os_linux.h"
#include "os/raw_writer.h"
#include "os/world_stop.h"
#include "report/report.h"
#include "report/stack_printer.h"

namespace guardarena::report {
namespace {

enum : std::uint8_t { kUnmarked = 0, kReachable = 1, kIndirect = 2 };

struct Block {
  std::uintptr_t start;
  std::uint64_t size;
  std::uint32_t alloc_stack;
  std::uint8_t mark;
};

struct Scan {
  Block* blocks = nullptr;
  std::size_t count = 0;
  std::size_t capacity = 0;
  std::size_t seen = 0;  // live blocks met, held or not (more than capacity: try again)
  std::uint32_t* work = nullptr;  // indices of reachable blocks still to scan
  std::size_t work_count = 0;
};

void collect(const BlockInfo& b, void* ctx) {
  auto* s = static_cast<Scan*>(ctx);
  ++s->seen;
  if (s->count == s->capacity) return;
  s->blocks[s->count++] = Block{b.block, b.size == 0 ? 1 : b.size, b.alloc_stack, kUnmarked};
}

// Index of the block containing address `a`, or -1.
std::ptrdiff_t find_block(const Scan& s, std::uintptr_t a) noexcept {
  std::size_t lo = 0;
  std::size_t hi = s.count;
  while (lo < hi) {
    std::size_t mid = (lo + hi) / 2;
    if (s.blocks[mid].start <= a) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0) return -1;
  const Block& b = s.blocks[lo - 1];
  return a < b.start + b.size ? static_cast<std::ptrdiff_t>(lo - 1) : -1;
}

// Marks every block that one of `n` words at `words` points into with
// `mark` (reachable blocks are queued for scanning). The words are a copy
// of memory (scan_resident, scan_block) or of registers.
void scan_words(Scan& s, const unsigned char* words, std::size_t n, std::uint8_t mark,
                std::ptrdiff_t self = -1) noexcept {
  if (s.count == 0) return;
  std::uintptr_t lo = s.blocks[0].start;
  std::uintptr_t hi = s.blocks[s.count - 1].start + s.blocks[s.count - 1].size;
  for (std::size_t k = 0; k < n; ++k) {
    std::uintptr_t v;
    std::memcpy(&v, words + k * 8, sizeof v);
    if (v < lo || v >= hi) continue;
    std::ptrdiff_t i = find_block(s, v);
    // Only unmarked blocks change; a block pointing into itself is no reason.
    if (i < 0 || i == self || s.blocks[i].mark != kUnmarked) continue;
    s.blocks[i].mark = mark;
    if (mark == kReachable) s.work[s.work_count++] = static_cast<std::uint32_t>(i);
  }
}

std::uintptr_t parse_hex(const char*& p) noexcept {
  std::uintptr_t v = 0;
  for (;; ++p) {
    char c = *p;
    if (c >= '0' && c <= '9') {
      v = v * 16 + static_cast<std::uintptr_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = v * 16 + static_cast<std::uintptr_t>(c - 'a' + 10);
    } else {
      return v;
    }
  }
}

// The library's own ranges (os::for_each_own_mapping), sorted by start:
// never roots, and never read.
struct OwnRanges {
  std::uintptr_t lo[os::kMaxTrackedMappings];
  std::uintptr_t hi[os::kMaxTrackedMappings];
  std::size_t count = 0;
  // Where scanned memory is copied to: inside an own range, so it is never
  // read as a root itself.
  alignas(8) unsigned char buf[64 * 1024];
  // One window of /proc/self/pagemap entries (see scan_resident()).
  static constexpr std::size_t kWindowPages = 4096;
  std::uint64_t pagemap[kWindowPages];
  int pagemap_fd = -1;
};

// The writable segments of the loaded modules, gathered before the threads
// are paused: dl_iterate_phdr() takes the loader's lock, which a paused
// thread may hold (inside dlopen, or a TLS allocation).
struct ModuleRanges {
  static constexpr std::size_t kMax = 4096;
  std::uintptr_t lo[kMax];
  std::uintptr_t hi[kMax];
  std::size_t count = 0;
};

int add_module_ranges(dl_phdr_info* info, std::size_t, void* ctx) {
  auto* r = static_cast<ModuleRanges*>(ctx);
  for (int i = 0; i < info->dlpi_phnum && r->count < ModuleRanges::kMax; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0) continue;
    std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    r->lo[r->count] = begin;
    r->hi[r->count++] = begin + ph.p_memsz;
  }
  return 0;
}

void add_own_range(std::uintptr_t lo, std::uintptr_t hi, void* ctx) {
  auto* r = static_cast<OwnRanges*>(ctx);
  if (r->count == os::kMaxTrackedMappings) return;
  std::size_t i = r->count++;
  for (; i > 0 && r->lo[i - 1] > lo; --i) {  // insertion sort: a few dozen entries
    r->lo[i] = r->lo[i - 1];
    r->hi[i] = r->hi[i - 1];
  }
  r->lo[i] = lo;
  r->hi[i] = hi;
}

// Memory of this process read through process_vm_readv: a page that cannot
// be read (a guard page of someone else's, a mapping that went away, a block
// another thread freed and closed during the scan) makes the call stop short
// instead of raising SIGSEGV in the middle of the exit path. Where the kernel
// refuses the call (seccomp, qemu-user), the bytes go through a pipe
// instead: write(2) from an unreadable page fails with EFAULT, it does not
// fault. Plain loads only if no pipe can be had either.
class SafeReader {
 public:
  SafeReader() = default;
  SafeReader(const SafeReader&) = delete;
  SafeReader& operator=(const SafeReader&) = delete;
  ~SafeReader() {
    if (pipe_[0] >= 0) ::close(pipe_[0]);
    if (pipe_[1] >= 0) ::close(pipe_[1]);
  }

  // Up to n bytes at `addr` into buf; returns how many could be read.
  std::size_t read(std::uintptr_t addr, void* buf, std::size_t n) noexcept {
    if (mode_ == Mode::kProcessVm) {
      iovec local{buf, n};
      // NOLINTNEXTLINE(performance-no-int-to-ptr): a foreign address, only passed on.
      iovec remote{reinterpret_cast<void*>(addr), n};
      ssize_t got = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != ENOSYS && errno != EPERM) return 0;
      mode_ = open_pipe() ? Mode::kPipe : Mode::kDirect;
    }
    if (mode_ == Mode::kPipe) return read_through_pipe(addr, static_cast<unsigned char*>(buf), n);
    // NOLINTNEXTLINE(performance-no-int-to-ptr): a mapping's address, readable when listed.
    std::memcpy(buf, reinterpret_cast<const void*>(addr), n);
    return n;
  }

 private:
  enum class Mode : std::uint8_t { kProcessVm, kPipe, kDirect };

  // Both ends above 2: a program that closed stderr would otherwise lend
  // the pipe its number, and the report written there would be lost.
  bool open_pipe() noexcept {
    if (::pipe2(pipe_, O_CLOEXEC) != 0) return false;
    for (int& fd : pipe_) {
      if (fd > 2) continue;
      const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      ::close(fd);
      fd = high;
    }
    if (pipe_[0] >= 0 && pipe_[1] >= 0) return true;
    for (int& fd : pipe_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    return false;
  }

  // A page at a time: the pipe's buffer holds at least one.
  std::size_t read_through_pipe(std::uintptr_t addr, unsigned char* buf, std::size_t n) noexcept {
    const std::size_t page = os::page_size();
    std::size_t done = 0;
    while (done < n) {
      const std::size_t chunk = std::min(n - done, page - (addr + done) % page);
      // NOLINTNEXTLINE(performance-no-int-to-ptr): a foreign address, only passed on.
      const ssize_t in = ::write(pipe_[1], reinterpret_cast<const void*>(addr + done), chunk);
      if (in <= 0) break;
      std::size_t got = 0;
      while (got < static_cast<std::size_t>(in)) {
        const ssize_t out = ::read(pipe_[0], buf + done + got, static_cast<std::size_t>(in) - got);
        if (out <= 0) return done + got;
        got += static_cast<std::size_t>(out);
      }
      done += got;
      if (got < chunk) break;
    }
    return done;
  }

  Mode mode_ = Mode::kProcessVm;
  int pipe_[2] = {-1, -1};
};

// Marks in has_data[i] whether page i of [window, window + pages) can hold
// anything but zeros: present or swapped out, from /proc/self/pagemap (bits
// 63 and 62; readable without privileges) on a system with swap. Otherwise
// mincore() answers, which would call a swapped-out page empty. False when
// neither could answer.
bool pages_with_data(OwnRanges& own, std::uintptr_t window, std::size_t pages,
                     unsigned char* has_data) noexcept {
  const std::uintptr_t page = os::page_size();
  if (own.pagemap_fd >= 0) {
    const auto want = static_cast<ssize_t>(pages * sizeof(std::uint64_t));
    const auto offset = static_cast<off_t>(window / page * sizeof(std::uint64_t));
    if (::pread(own.pagemap_fd, own.pagemap, static_cast<std::size_t>(want), offset) == want) {
      for (std::size_t i = 0; i < pages; ++i) has_data[i] = (own.pagemap[i] >> 62) != 0 ? 1 : 0;
      return true;
    }
  }
  // NOLINTNEXTLINE(performance-no-int-to-ptr): a mapping's address from /proc/self/maps.
  if (::mincore(reinterpret_cast<void*>(window), pages * page, has_data) != 0) return false;
  for (std::size_t i = 0; i < pages; ++i) has_data[i] &= 1;
  return true;
}

// Scans the pages of [begin, end) that hold data: pages never touched (most
// of a big sparse reservation) hold zeros, and reading them would only fault
// them in.
void scan_resident(Scan& s, SafeReader& reader, OwnRanges& own, std::uintptr_t begin,
                   std::uintptr_t end) noexcept {
  const std::uintptr_t page = os::page_size();
  constexpr std::size_t kWindowPages = OwnRanges::kWindowPages;  // 16 MiB with 4 KiB pages
  unsigned char has_data[kWindowPages];
  unsigned char* const buf = own.buf;
  constexpr std::size_t kBufBytes = sizeof own.buf;
  for (std::uintptr_t window = begin & ~(page - 1); window < end;) {
    std::size_t pages = std::min<std::size_t>(kWindowPages, (end - window + page - 1) / page);
    if (!pages_with_data(own, window, pages, has_data)) {
      window += pages * page;
      continue;
    }
    for (std::size_t i = 0; i < pages;) {
      if (has_data[i] == 0) {
        ++i;
        continue;
      }
      std::size_t run = 1;
      while (i + run < pages && has_data[i + run] != 0 && (run + 1) * page <= kBufBytes) ++run;
      std::uintptr_t lo = std::max(window + i * page, begin);
      std::uintptr_t hi = std::min(window + (i + run) * page, end);
      lo = (lo + 7) & ~std::uintptr_t{7};
      if (lo < hi) {
        std::size_t got = reader.read(lo, buf, hi - lo);
        scan_words(s, buf, got / 8, kReachable);
      }
      i += run;
    }
    window += pages * page;
  }
}

// scan_words() over block `i`'s contents, copied through `reader`: threads
// the program did not join still run, and one may free the block meanwhile
// (full mode then makes its pages inaccessible). What could not be read is
// not scanned; the block itself is judged again at the end (still_live()).
void scan_block(Scan& s, SafeReader& reader, OwnRanges& own, std::size_t i,
                std::uint8_t mark) noexcept {
  const Block b = s.blocks[i];
  const std::uintptr_t end = b.start + b.size;
  for (std::uintptr_t at = (b.start + 7) & ~std::uintptr_t{7}; at + 8 <= end;) {
    const std::size_t want = std::min<std::size_t>(end - at, sizeof own.buf) & ~std::size_t{7};
    const std::size_t got = reader.read(at, own.buf, want);
    scan_words(s, own.buf, got / 8, mark, static_cast<std::ptrdiff_t>(i));
    if (got < want) return;
    at += want;
  }
}

void drain_work(Scan& s, SafeReader& reader, OwnRanges& own) noexcept {
  while (s.work_count > 0) scan_block(s, reader, own, s.work[--s.work_count], kReachable);
}

// Where the live part of the stack holding [lo, hi) begins: the calling
// thread's stack pointer `sp`, or a paused thread's less the red zone (where
// a leaf function keeps locals on x86-64). Dead frames below are no roots,
// nor is the pause signal's frame: scan_registers() reads its copy of the
// registers. A paused thread's stack pointer counts only in a mapping that
// `is_stack` (a stack switched to inside a heap mapping must not hide the
// rest of it). `lo` for a mapping holding no known stack pointer, or two.
std::uintptr_t live_start(std::uintptr_t lo, std::uintptr_t hi, std::uintptr_t sp, bool is_stack,
                          const os::WorldStop& world) noexcept {
#if defined(__x86_64__)
  constexpr std::uintptr_t kRedZone = 128;
#else
  constexpr std::uintptr_t kRedZone = 0;
#endif
  std::uintptr_t start = lo;
  int found = 0;
  if (sp >= lo && sp < hi) {
    start = sp;
    ++found;
  }
  for (std::size_t i = 0; is_stack && i < world.paused(); ++i) {
    const std::uintptr_t t = world.thread(i).sp;
    if (t < lo || t >= hi) continue;
    start = t - kRedZone > lo ? t - kRedZone : lo;
    ++found;
  }
  return found == 1 ? start : lo;
}

// Scans every writable private mapping for roots, less the library's own
// ranges: the glibc heap and its thread arenas and mmap'ed chunks (where
// sampled-out blocks live), every thread's stack and static TLS, anonymous
// memory of the program's own. Stacks from their live_start(); the stack of
// a thread that could not be paused whole (its stack pointer is not known),
// which can only keep a dead pointer alive, never lose a live one. Module
// segments were scanned already and are read again harmlessly.
void scan_mappings(Scan& s, SafeReader& reader, OwnRanges& own, std::uintptr_t sp,
                   const os::WorldStop& world) noexcept {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  std::size_t have = 0;
  std::uintptr_t guard_end = 0;  // end of the last inaccessible mapping
  for (;;) {
    ssize_t n = ::read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
    buf[have] = '\0';
    char* line = buf;
    for (;;) {
      char* nl = std::strchr(line, '\n');
      if (nl == nullptr) break;
      *nl = '\0';
      const char* p = line;
      std::uintptr_t lo = parse_hex(p);
      ++p;
      std::uintptr_t hi = parse_hex(p);
      ++p;
      // "rw-p": readable, writable, private (shared memory holds no pointers
      // into this heap that the program could not also reach otherwise).
      bool scan = p[0] == 'r' && p[1] == 'w' && p[3] == 'p';
      // The main thread's stack, or a mapping right above a guard page, as
      // glibc places every thread stack.
      const bool is_stack = guard_end == lo || std::strstr(p, "[stack]") != nullptr;
      guard_end = p[0] == '-' && p[1] == '-' && p[2] == '-' ? hi : 0;
      if (scan) lo = live_start(lo, hi, sp, is_stack, world);
      // The gaps between the library's own ranges (a mapping can be merged
      // with one of them into a single line).
      for (std::size_t i = 0; scan && i < own.count && lo < hi; ++i) {
        if (own.hi[i] <= lo || own.lo[i] >= hi) continue;
        if (own.lo[i] > lo) scan_resident(s, reader, own, lo, own.lo[i]);
        lo = own.hi[i];
      }
      if (scan && lo < hi) scan_resident(s, reader, own, lo, hi);
      line = nl + 1;
    }
    std::size_t rest = have - static_cast<std::size_t>(line - buf);
    std::memmove(buf, line, rest);
    have = rest;
  }
  ::close(fd);
}

// Blocks the dynamic loader allocates (DTVs, TLS blocks of dlopen'ed
// modules, link maps) may be reachable only through loader structures this
// scan cannot read as pointers (offsets, the loader's own lists);
// LeakSanitizer ignores them for the same reason.
bool allocated_by_loader(std::uint32_t stack) noexcept {
  std::uintptr_t pcs[64];
  std::size_t n = stack != 0 ? load_stack(stack, pcs, 64) : 0;
  for (std::size_t i = 0; i < n; ++i) {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void*>(pcs[i] - 1), &info) != 0 && info.dli_fname != nullptr &&
        std::strstr(info.dli_fname, "/ld-linux") != nullptr) {
      return true;
    }
  }
  return false;
}

struct Group {
  std::uint32_t stack;
  std::uint8_t kind;  // kUnmarked = direct, kIndirect
  std::uint64_t bytes;
  std::uint64_t objects;
};

void write_group_stack(RawWriter& w, std::uint32_t stack, bool json) noexcept {
  std::uintptr_t pcs[64];
  std::size_t n = stack != 0 ? load_stack(stack, pcs, 64) : 0;
  StackPrintOptions po;
  po.json = json;
  if (n != 0) {
    print_frames(w, pcs, n, po);
  } else if (!json) {
    w.str("    <no stack: stack_depth=0 or depot full>\n");
  }
}

// The registers of every paused thread: a thread may hold the only pointer
// to a block in one (CPython keeps a new thread's start state so).
void scan_registers(Scan& s, const os::WorldStop& world) noexcept {
  for (std::size_t i = 0; i < world.paused(); ++i) {
    const os::PausedThread& t = world.thread(i);
    scan_words(s, reinterpret_cast<const unsigned char*>(t.regs), t.words, kReachable);
  }
}

// One buffer for the whole listing, flushed per group: big enough for a
// group of 64 symbolized frames in JSON, as the fault report's.
char g_leak_buf[65536];

void write_text_leaks(const Group* groups, std::size_t ngroups, std::size_t max_groups,
                      const LeakSummary& result) noexcept {
  int fd = report_fd();
  RawWriter w(g_leak_buf, sizeof g_leak_buf);
  auto pid = static_cast<std::uint64_t>(::getpid());
  w.str("\n==").dec(pid).str("==ERROR: guardarena: detected memory leaks\n");
  w.flush_to(fd);
  std::size_t shown = std::min(ngroups, max_groups);
  for (std::size_t g = 0; g < shown; ++g) {
    w.str("\n").str(groups[g].kind == kUnmarked ? "Direct" : "Indirect").str(" leak of ");
    w.dec(groups[g].bytes)
        .str(" byte(s) in ")
        .dec(groups[g].objects)
        .str(" object(s) allocated from:\n");
    write_group_stack(w, groups[g].stack, false);
    w.flush_to(fd);
  }
  if (shown < ngroups) w.str("\n(").dec(ngroups - shown).str(" more leak groups not shown)\n");
  w.str("\nSUMMARY: guardarena: ")
      .dec(result.direct_bytes + result.indirect_bytes)
      .str(" byte(s) leaked in ")
      .dec(result.direct_objects + result.indirect_objects)
      .str(" allocation(s).\n");
  w.flush_to(fd);
}

// report_format=json: one JSON object per line, like every other report: a
// "memory-leak" object per group, then one "leak-summary" object, so a log
// stays a sequence of JSON documents whatever kinds it holds.
void write_json_leaks(const Group* groups, std::size_t ngroups, std::size_t max_groups,
                      const LeakSummary& result) noexcept {
  int fd = report_fd();
  RawWriter w(g_leak_buf, sizeof g_leak_buf);
  auto pid = static_cast<std::uint64_t>(::getpid());
  std::size_t shown = std::min(ngroups, max_groups);
  for (std::size_t g = 0; g < shown; ++g) {
    w.str("{\"tool\":\"guardarena\",\"pid\":").dec(pid);
    w.str(",\"kind\":\"memory-leak\",\"leak\":");
    w.json_string(groups[g].kind == kUnmarked ? "direct" : "indirect");
    w.str(",\"bytes\":").dec(groups[g].bytes).str(",\"objects\":").dec(groups[g].objects);
    w.str(",\"stacks\":{\"alloc\":[");
    write_group_stack(w, groups[g].stack, true);
    w.str("]}}\n");
    w.flush_to(fd);
  }
  w.str("{\"tool\":\"guardarena\",\"pid\":").dec(pid);
  w.str(",\"kind\":\"leak-summary\",\"bytes\":")
      .dec(result.direct_bytes + result.indirect_bytes)
      .str(",\"allocations\":")
      .dec(result.direct_objects + result.indirect_objects)
      .str(",\"direct_bytes\":")
      .dec(result.direct_bytes)
      .str(",\"direct_objects\":")
      .dec(result.direct_objects)
      .str(",\"indirect_bytes\":")
      .dec(result.indirect_bytes)
      .str(",\"indirect_objects\":")
      .dec(result.indirect_objects)
      .str(",\"groups\":")
      .dec(ngroups)
      .str(",\"groups_not_shown\":")
      .dec(ngroups - shown)
      .str("}\n");
  w.flush_to(fd);
}

// Threads the program did not join still run during the scan: a block one
// of them frees meanwhile was its, not a leak (its pointer may have been
// read from a place the scan had passed). Only a block live from the
// snapshot to the end of the scan is judged.
bool still_live(const Arena& arena, const Block& b) noexcept {
  BlockInfo now;
  // NOLINTNEXTLINE(performance-no-int-to-ptr): a block address from the arena.
  return arena.block_info(reinterpret_cast<const void*>(b.start), now) && now.block == b.start &&
         now.alloc_stack == b.alloc_stack;
}

}  // namespace

namespace {

// The scan and the listing. The calling thread's stack is read from
// `stack_start` up: the frame of check_leaks(), above every frame of the
// scan's own, whose working copies of block addresses (a sort's temporaries)
// must not count as roots.
[[gnu::noinline]] LeakSummary scan_and_list(const Arena& arena, std::size_t max_groups,
                                            std::uintptr_t stack_start) noexcept {
  LeakSummary result;
  const std::uintptr_t sp = stack_start;
  constexpr std::size_t kScratch = sizeof(OwnRanges) + sizeof(ModuleRanges);
  void* scratch = os::map_internal(kScratch, "guardarena:leaks");
  if (scratch == nullptr) return result;
  auto* own = new (scratch) OwnRanges;
  auto* modules = new (static_cast<unsigned char*>(scratch) + sizeof(OwnRanges)) ModuleRanges;
  dl_iterate_phdr(add_module_ranges, modules);
  // Without swap no page can be swapped out, and mincore() alone is exact
  // and much faster over a big sparse mapping (pagemap answers 8 bytes for
  // every page: 10 s for 64 GiB here, against 0.04 s).
  struct sysinfo si {};
  if (::sysinfo(&si) != 0 || si.totalswap != 0)
    own->pagemap_fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  SafeReader reader;

  // The snapshot and the marking run with every other thread paused that can
  // be: nothing allocates, frees or moves a pointer meanwhile, and their
  // registers are roots. Nothing in between takes a lock or calls malloc.
  // The live count is an estimate (other threads' fast-mode counts are
  // folded in later): a snapshot that finds more blocks than it has room for
  // is taken again, larger and still paused (a resume would wake sleeping
  // threads, which may then drop references), since a block left out would
  // hide what it points to and list it as leaked. Mapping takes no lock.
  const std::size_t estimate = arena.stats().live_blocks;
  os::WorldStop world;
  world.stop();
  Scan s;
  void* mem = nullptr;
  std::size_t bytes = 0;
  std::size_t capacity = estimate + 65536;
  for (int attempt = 0;; ++attempt) {
    bytes = capacity * (sizeof(Block) + sizeof(std::uint32_t));
    mem = os::map_internal(bytes, "guardarena:leaks");
    if (mem == nullptr) {
      world.resume();
      if (own->pagemap_fd >= 0) ::close(own->pagemap_fd);
      os::release(scratch, kScratch);
      return result;
    }
    s = Scan{};
    s.capacity = capacity;
    s.blocks = static_cast<Block*>(mem);
    s.work = reinterpret_cast<std::uint32_t*>(s.blocks + s.capacity);
    arena.for_each_live(collect, &s);
    if (s.seen <= s.capacity || attempt == 3) break;
    os::release(mem, bytes);
    capacity = s.seen + 1024;  // exact now: nothing allocates while paused
  }
  // After the last mapping: the scan's own memory is never a root.
  os::for_each_own_mapping(add_own_range, own);
  std::sort(s.blocks, s.blocks + s.count,
            [](const Block& a, const Block& b) { return a.start < b.start; });
  // Through the reader: a module unloaded since dl_iterate_phdr() above (by
  // a thread that cannot be paused) must not fault the scan.
  for (std::size_t i = 0; i < modules->count; ++i)
    scan_resident(s, reader, *own, modules->lo[i], modules->hi[i]);
  scan_registers(s, world);
  scan_mappings(s, reader, *own, sp, world);
  drain_work(s, reader, *own);
  // Leaked blocks pointed to by other leaked blocks are indirect leaks.
  for (std::size_t i = 0; i < s.count; ++i) {
    if (s.blocks[i].mark == kUnmarked) scan_block(s, reader, *own, i, kIndirect);
  }
  world.resume();
  if (own->pagemap_fd >= 0) ::close(own->pagemap_fd);
  os::release(scratch, kScratch);

  // Group by (kind, allocation stack): reuse the work array's memory is not
  // enough for groups, so sort the leaked blocks by key and aggregate.
  std::size_t leaked = 0;
  for (std::size_t i = 0; i < s.count; ++i) {
    if (s.blocks[i].mark != kReachable && still_live(arena, s.blocks[i]))
      s.blocks[leaked++] = s.blocks[i];
  }
  std::sort(s.blocks, s.blocks + leaked, [](const Block& a, const Block& b) {
    return a.mark != b.mark ? a.mark < b.mark : a.alloc_stack < b.alloc_stack;
  });
  auto* groups = reinterpret_cast<Group*>(s.work);  // enough room: <= leaked groups
  static_assert(sizeof(Group) <= sizeof(Block) + sizeof(std::uint32_t));
  std::size_t ngroups = 0;
  for (std::size_t i = 0; i < leaked; ++i) {
    const Block& b = s.blocks[i];
    if (ngroups == 0 || groups[ngroups - 1].stack != b.alloc_stack ||
        groups[ngroups - 1].kind != b.mark) {
      groups[ngroups++] = Group{b.alloc_stack, b.mark, 0, 0};
    }
    groups[ngroups - 1].bytes += b.size;
    groups[ngroups - 1].objects += 1;
    if (b.mark == kUnmarked) {
      result.direct_bytes += b.size;
      ++result.direct_objects;
    } else {
      result.indirect_bytes += b.size;
      ++result.indirect_objects;
    }
  }
  std::size_t kept_groups = 0;
  for (std::size_t g = 0; g < ngroups; ++g) {
    if (allocated_by_loader(groups[g].stack)) {
      std::uint64_t& bytes_of_kind =
          groups[g].kind == kUnmarked ? result.direct_bytes : result.indirect_bytes;
      std::uint64_t& objects_of_kind =
          groups[g].kind == kUnmarked ? result.direct_objects : result.indirect_objects;
      bytes_of_kind -= groups[g].bytes;
      objects_of_kind -= groups[g].objects;
      continue;
    }
    groups[kept_groups++] = groups[g];
  }
  ngroups = kept_groups;
  std::sort(groups, groups + ngroups, [](const Group& a, const Group& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.bytes > b.bytes;
  });

  if (ngroups > 0) {
    if (json_reports()) {
      write_json_leaks(groups, ngroups, max_groups, result);
    } else {
      write_text_leaks(groups, ngroups, max_groups, result);
    }
  }
  os::release(mem, bytes);
  return result;
}

}  // namespace

[[gnu::noinline]] LeakSummary check_leaks(const Arena& arena, std::size_t max_groups) noexcept {
  // This thread's callee-saved registers may hold the only pointer to a
  // block: setjmp() stores them in `regs` (the stack and frame pointers and
  // the return address mangled, which point to no block), where the stack
  // range scanned begins, whatever the frame's layout.
  jmp_buf regs;
  setjmp(regs);  // NOLINT(cert-err52-cpp): a register snapshot, never longjmp'ed to
  return scan_and_list(arena, max_groups, reinterpret_cast<std::uintptr_t>(&regs));
}

}  // namespace guardarena::report
