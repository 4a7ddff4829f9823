// Leak detection at exit (detect_leaks=1): a conservative reachability scan
// in the spirit of LeakSanitizer. Roots are the writable segments of every
// loaded module, the glibc heap, the calling thread's stack and registers and
// the mapping holding its static TLS; every word that points into (or inside)
// a live block marks it reachable, and reachable blocks are scanned in turn.
// What is left is leaked: "direct" when nothing points to it, "indirect" when
// only other leaked blocks do. Leaks are grouped by allocation stack, largest
// first. Runs at exit, single-threaded in practice; allocates nothing through
// malloc (working memory comes from os::map_internal).
#include "report/leaks.h"

#include <dlfcn.h>
#include <link.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "os/os_linux.h"
#include "report/raw_writer.h"
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
  std::uint32_t* work = nullptr;  // indices of reachable blocks still to scan
  std::size_t work_count = 0;
};

void collect(const BlockInfo& b, void* ctx) {
  auto* s = static_cast<Scan*>(ctx);
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

// Marks every block that a word in [begin, end) points into with `mark`
// (reachable blocks are queued for scanning).
void scan_range(Scan& s, std::uintptr_t begin, std::uintptr_t end, std::uint8_t mark,
                std::ptrdiff_t self = -1) noexcept {
  begin = (begin + 7) & ~std::uintptr_t{7};
  if (s.count == 0) return;
  std::uintptr_t lo = s.blocks[0].start;
  std::uintptr_t hi = s.blocks[s.count - 1].start + s.blocks[s.count - 1].size;
  for (std::uintptr_t p = begin; p + 8 <= end; p += 8) {
    std::uintptr_t v;
    std::memcpy(&v, reinterpret_cast<const void*>(p), sizeof v);
    if (v < lo || v >= hi) continue;
    std::ptrdiff_t i = find_block(s, v);
    // Only unmarked blocks change; a block pointing into itself is no reason.
    if (i < 0 || i == self || s.blocks[i].mark != kUnmarked) continue;
    s.blocks[i].mark = mark;
    if (mark == kReachable) s.work[s.work_count++] = static_cast<std::uint32_t>(i);
  }
}

void drain_work(Scan& s) noexcept {
  while (s.work_count > 0) {
    const Block& b = s.blocks[s.work[--s.work_count]];
    scan_range(s, b.start, b.start + b.size, kReachable);
  }
}

int scan_module(dl_phdr_info* info, std::size_t, void* ctx) {
  auto* s = static_cast<Scan*>(ctx);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0) continue;
    std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    scan_range(*s, begin, begin + ph.p_memsz, kReachable);
  }
  return 0;
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

// Scans the writable mappings that hold roots outside module segments: the
// glibc heap ([heap], where sampled-out blocks live), the mapping of the
// current stack pointer and the one holding the thread pointer (static TLS).
void scan_special_mappings(Scan& s, std::uintptr_t sp, std::uintptr_t tp) noexcept {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  std::size_t have = 0;
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
      bool writable = p[1] == 'w' && p[0] == 'r';
      bool heap = std::strstr(line, "[heap]") != nullptr;
      if (writable && (heap || (sp >= lo && sp < hi) || (tp >= lo && tp < hi))) {
        // The stack is live only above the current stack pointer.
        std::uintptr_t begin = sp >= lo && sp < hi ? sp : lo;
        scan_range(s, begin, hi, kReachable);
      }
      line = nl + 1;
    }
    std::size_t rest = have - static_cast<std::size_t>(line - buf);
    std::memmove(buf, line, rest);
    have = rest;
  }
  ::close(fd);
}

// Blocks the dynamic loader allocates (DTVs, TLS blocks of dlopen'ed
// modules, link maps) are reachable through loader structures we do not scan
// (cached thread stacks, the loader's own lists); LeakSanitizer ignores them
// for the same reason.
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

}  // namespace

[[gnu::noinline]] LeakSummary check_leaks(const Arena& arena, std::size_t max_groups) noexcept {
  LeakSummary result;
  // Registers of this thread (callee-saved ones may hold the only pointer to
  // a block) are spilled to the stack, which is scanned below.
  __builtin_unwind_init();
  Scan s;
  s.capacity = arena.stats().live_blocks + 1024;
  std::size_t bytes = s.capacity * (sizeof(Block) + sizeof(std::uint32_t));
  void* mem = os::map_internal(bytes, "guardarena:leaks");
  if (mem == nullptr) return result;
  s.blocks = static_cast<Block*>(mem);
  s.work = reinterpret_cast<std::uint32_t*>(s.blocks + s.capacity);
  arena.for_each_live(collect, &s);
  std::sort(s.blocks, s.blocks + s.count, [](const Block& a, const Block& b) { return a.start < b.start; });

  volatile char here = 0;
  auto sp = reinterpret_cast<std::uintptr_t>(&here);
  std::uintptr_t tp = 0;
#if defined(__x86_64__)
  asm volatile("mov %%fs:0, %0" : "=r"(tp));
#endif
  dl_iterate_phdr(scan_module, &s);
  scan_special_mappings(s, sp, tp);
  drain_work(s);
  // Leaked blocks pointed to by other leaked blocks are indirect leaks.
  for (std::size_t i = 0; i < s.count; ++i) {
    if (s.blocks[i].mark != kUnmarked) continue;
    scan_range(s, s.blocks[i].start, s.blocks[i].start + s.blocks[i].size, kIndirect,
               static_cast<std::ptrdiff_t>(i));
  }

  // Group by (kind, allocation stack): reuse the work array's memory is not
  // enough for groups, so sort the leaked blocks by key and aggregate.
  std::size_t leaked = 0;
  for (std::size_t i = 0; i < s.count; ++i) {
    if (s.blocks[i].mark != kReachable) s.blocks[leaked++] = s.blocks[i];
  }
  std::sort(s.blocks, s.blocks + leaked, [](const Block& a, const Block& b) {
    return a.mark != b.mark ? a.mark < b.mark : a.alloc_stack < b.alloc_stack;
  });
  auto* groups = reinterpret_cast<Group*>(s.work);  // enough room: <= leaked groups
  static_assert(sizeof(Group) <= sizeof(Block) + sizeof(std::uint32_t));
  std::size_t ngroups = 0;
  for (std::size_t i = 0; i < leaked; ++i) {
    const Block& b = s.blocks[i];
    if (ngroups == 0 || groups[ngroups - 1].stack != b.alloc_stack || groups[ngroups - 1].kind != b.mark) {
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
      std::uint64_t& bytes_of_kind = groups[g].kind == kUnmarked ? result.direct_bytes : result.indirect_bytes;
      std::uint64_t& objects_of_kind = groups[g].kind == kUnmarked ? result.direct_objects : result.indirect_objects;
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
    static char buf[16384];
    int fd = report_fd();
    RawWriter w(buf, sizeof buf);
    auto pid = static_cast<std::uint64_t>(::getpid());
    w.str("\n==").dec(pid).str("==ERROR: guardarena: detected memory leaks\n");
    w.flush_to(fd);
    std::size_t shown = std::min(ngroups, max_groups);
    for (std::size_t g = 0; g < shown; ++g) {
      w.str("\n").str(groups[g].kind == kUnmarked ? "Direct" : "Indirect").str(" leak of ");
      w.dec(groups[g].bytes).str(" byte(s) in ").dec(groups[g].objects).str(" object(s) allocated from:\n");
      std::uintptr_t pcs[64];
      std::size_t n = groups[g].stack != 0 ? load_stack(groups[g].stack, pcs, 64) : 0;
      if (n == 0) {
        w.str("    <no stack: stack_depth=0 or depot full>\n");
      } else {
        StackPrintOptions po;
        print_frames(w, pcs, n, po);
      }
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
  os::release(mem, bytes);
  return result;
}

}  // namespace guardarena::report
