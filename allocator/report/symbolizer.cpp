// Report-time symbolization: maps pcs to modules with dl_iterate_phdr, asks
// llvm-symbolizer or addr2line (a child process) for names and lines, and
// prints the frames through RawWriter. Must not call malloc (the heap may be
// what broke), must not block past the deadline, and must not let the child
// inherit LD_PRELOAD (the symbolizer would run under this allocator).
// All working memory is one private mapping per call (os::map_internal); if
// even that fails, frames are printed from dladdr alone.
#include "report/symbolizer.h"

#include <dlfcn.h>
#include <link.h>

#include <cerrno>
#include <cstring>

#include "os/os_linux.h"
#include "os/secure_execution.h"
#include "report/symbolizer_scratch.h"

namespace guardarena::report {
namespace {

using namespace symbolizer_detail;

// ---------------------------------------------------------------------------
// Modules

struct ModuleSearch {
  Scratch* s;
  std::size_t unresolved;
};

int add_module(Scratch* s, const dl_phdr_info* info) noexcept {
  if (s->module_count == kMaxModules) return kNoModule;
  Module& m = s->modules[s->module_count];
  m.bias = info->dlpi_addr;
  if (info->dlpi_name == nullptr || info->dlpi_name[0] == '\0') {
    // The main program: ld.so does not record its path.
    m.path = s->exe_path;
    m.symbolizable = s->exe_path[0] == '/';
  } else {
    m.path = info->dlpi_name;
    m.symbolizable = std::strchr(info->dlpi_name, '/') != nullptr;
  }
  return static_cast<int>(s->module_count++);
}

int module_callback(dl_phdr_info* info, std::size_t, void* arg) noexcept {
  auto* search = static_cast<ModuleSearch*>(arg);
  Scratch* s = search->s;
  int index = kNoModule;
  for (int p = 0; p < info->dlpi_phnum; ++p) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[p];
    if (ph.p_type != PT_LOAD) continue;
    const std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    const std::uintptr_t end = begin + ph.p_memsz;
    for (std::size_t i = 0; i < s->frame_count; ++i) {
      Frame& f = s->frames[i];
      if (f.module != kNoModule || f.lookup < begin || f.lookup >= end) continue;
      if (index == kNoModule) index = add_module(s, info);
      if (index == kNoModule) return 1;
      f.module = index;
      --search->unresolved;
    }
  }
  return search->unresolved == 0 ? 1 : 0;
}

void read_exe_path(Scratch* s) noexcept {
  const ssize_t len = ::readlink("/proc/self/exe", s->exe_path, kPathCap - 1);
  if (len <= 0) {
    s->exe_path[0] = '\0';
    return;
  }
  s->exe_path[len] = '\0';
}

void resolve_modules(Scratch* s) noexcept {
  read_exe_path(s);
  ModuleSearch search{s, s->frame_count};
  if (search.unresolved > 0) dl_iterate_phdr(module_callback, &search);
}

// ---------------------------------------------------------------------------
// Visiting and printing

// Fills in the dladdr name of a pc: the nearest exported (.dynsym) symbol,
// mangled. Executables linked without -rdynamic export few symbols.
void add_dladdr_name(SymbolizedFrame* frame, std::uintptr_t lookup) noexcept {
  Dl_info info{};
  // NOLINTNEXTLINE(performance-no-int-to-ptr): pcs are integers by nature.
  if (dladdr(reinterpret_cast<void*>(lookup), &info) == 0 || info.dli_sname == nullptr) return;
  frame->function = info.dli_sname;
  frame->function_from_dladdr = true;
  const auto sym = reinterpret_cast<std::uintptr_t>(info.dli_saddr);
  frame->symbol_offset = sym != 0 && lookup >= sym ? lookup - sym : 0;
}

void visit_frames(const Scratch* s, FrameVisitor visit, void* context) noexcept {
  std::size_t number = 0;
  for (std::size_t i = 0; i < s->frame_count; ++i) {
    const Frame& f = s->frames[i];
    const Module* m = f.module == kNoModule ? nullptr : &s->modules[f.module];
    SymbolizedFrame base{};
    base.index = i;
    base.pc = f.pc;
    base.function = "";
    base.location = "";
    base.module = m == nullptr ? "" : m->path;
    base.module_offset = m == nullptr ? 0 : f.pc - m->bias;
    const std::size_t results = f.answered ? f.result_count : 0;
    for (std::size_t r = 0; r < results; ++r) {
      const Result& res = s->results[f.first_result + r];
      SymbolizedFrame frame = base;
      frame.number = number++;
      frame.function = res.function;
      frame.location = res.location;
      // Only the outermost answer of an inlining chain is a real symbol.
      if (res.function[0] == '\0' && r + 1 == results) add_dladdr_name(&frame, f.lookup);
      visit(frame, context);
    }
    if (results == 0) {
      SymbolizedFrame frame = base;
      frame.number = number++;
      add_dladdr_name(&frame, f.lookup);
      visit(frame, context);
    }
  }
}

// Last resort when no scratch memory can be mapped: dladdr alone, on the
// stack.
void visit_frames_minimal(const std::uintptr_t* pcs, std::size_t n, bool first_is_fault_pc,
                          FrameVisitor visit, void* context) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uintptr_t lookup =
        (i == 0 && first_is_fault_pc) || pcs[i] == 0 ? pcs[i] : pcs[i] - 1;
    SymbolizedFrame frame{};
    frame.number = i;
    frame.index = i;
    frame.pc = pcs[i];
    frame.function = "";
    frame.location = "";
    frame.module = "";
    add_dladdr_name(&frame, lookup);
    Dl_info info{};
    // NOLINTNEXTLINE(performance-no-int-to-ptr): pcs are integers by nature.
    if (dladdr(reinterpret_cast<void*>(lookup), &info) != 0 && info.dli_fname != nullptr) {
      frame.module = info.dli_fname;
      frame.module_offset = pcs[i] - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
    }
    visit(frame, context);
  }
}

struct PrintTarget {
  RawWriter* out;
  int fd;
};

void print_frame(const SymbolizedFrame& frame, void* context) noexcept {
  const auto* target = static_cast<const PrintTarget*>(context);
  RawWriter& out = *target->out;
  out.str("    #").dec(frame.number).ch(' ').hex(frame.pc);
  if (frame.function[0] != '\0') {
    out.str(" in ").str(frame.function);
    if (frame.function_from_dladdr) out.ch('+').hex(frame.symbol_offset);
  }
  if (frame.location[0] != '\0') out.ch(' ').str(frame.location);
  if (frame.module[0] != '\0')
    out.str(" (").str(frame.module).ch('+').hex(frame.module_offset).ch(')');
  out.ch('\n');
  if (target->fd >= 0) out.flush_to(target->fd);
}

}  // namespace

using symbolizer_detail::executable;
using symbolizer_detail::Frame;
using symbolizer_detail::kAutoCandidates;
using symbolizer_detail::kMaxFrames;
using symbolizer_detail::kNoModule;
using symbolizer_detail::Scratch;
using symbolizer_detail::symbolize;

void symbolize_stack(const std::uintptr_t* pcs, std::size_t n, const SymbolizerConfig& config,
                     bool first_is_fault_pc, FrameVisitor visit, void* context) noexcept {
  if (visit == nullptr) return;
  const int saved_errno = errno;
  if (pcs == nullptr) n = 0;
  if (n > kMaxFrames) n = kMaxFrames;

  auto* s = static_cast<Scratch*>(os::map_internal(sizeof(Scratch), "symbolizer"));
  if (s == nullptr) {
    visit_frames_minimal(pcs, n, first_is_fault_pc, visit, context);
    errno = saved_errno;
    return;
  }
  s->frame_count = n;
  for (std::size_t i = 0; i < n; ++i) {
    Frame& f = s->frames[i];
    f.pc = pcs[i];
    f.lookup = (i == 0 && first_is_fault_pc) || pcs[i] == 0 ? pcs[i] : pcs[i] - 1;
    f.module = kNoModule;
  }
  resolve_modules(s);
  symbolize(s, config);
  visit_frames(s, visit, context);
  os::release(s, sizeof(Scratch));
  errno = saved_errno;
}

void print_stack(RawWriter& out, int fd, const std::uintptr_t* pcs, std::size_t n,
                 const SymbolizerConfig& config, bool first_is_fault_pc) noexcept {
  if (fd >= 0) {
    const int saved_errno = errno;
    out.flush_to(fd);
    errno = saved_errno;
  }
  PrintTarget target{&out, fd};
  symbolize_stack(pcs, n, config, first_is_fault_pc, print_frame, &target);
}

bool symbolizer_available(const SymbolizerConfig& config) noexcept {
  const int saved_errno = errno;
  bool found = false;
  if (os::secure_execution()) {
    // symbolize() starts no child there.
  } else if (config.path == nullptr) {
    for (const char* candidate : kAutoCandidates) found = found || executable(candidate);
  } else if (config.path[0] != '\0') {
    found = executable(config.path);
  }
  errno = saved_errno;
  return found;
}

}  // namespace guardarena::report
