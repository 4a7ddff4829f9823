// Turns captured program counters into report lines
//   "    #N 0xADDR in function file:line (module+0xoffset)"
// at report time, when the heap may be corrupted and the caller may be a
// signal handler. Never calls malloc (no std::string, no stdio, no popen, no
// __cxa_demangle): symbols come from llvm-symbolizer or addr2line run as a
// child process with clone(CLONE_VM|CLONE_VFORK) + execve on fixed buffers,
// under a hard deadline; without one, from dladdr (mangled names), else
// module + offset only.
//
// Async-signal-safety: apart from the syscalls, print_stack() calls
// dl_iterate_phdr() and dladdr(). POSIX does not list them as
// async-signal-safe; in glibc they allocate nothing but take the loader's
// recursive lock. So a report from a thread interrupted inside dlopen/dlclose
// reads the module list in an intermediate state, and a report on one thread
// while another sits inside dlopen waits for that dlopen to finish. Both are
// accepted: a report is the last thing the process does.
#pragma once

#include <cstddef>
#include <cstdint>

#include "os/raw_writer.h"

namespace guardarena::report {

inline constexpr int kDefaultSymbolizerTimeoutMs = 5000;

// Where symbols come from.
struct SymbolizerConfig {
  // nullptr: automatic, the first executable of /usr/bin/llvm-symbolizer,
  // /usr/bin/llvm-symbolizer-14, /usr/bin/addr2line (absolute paths only: PATH
  // is not searched, so a report never runs something the environment
  // chose). "": no external symbolizer (dladdr only). Any other value: that
  // executable; it is driven as addr2line when its file name contains
  // "addr2line", as llvm-symbolizer otherwise.
  const char* path = nullptr;
  // Budget for all symbolizer runs of one print_stack() call, from the first
  // spawn to the last reap; <= 0 means kDefaultSymbolizerTimeoutMs. When it
  // runs out the child is killed with SIGKILL and reaped, and the frames it
  // had not answered are printed without it.
  int timeout_ms = kDefaultSymbolizerTimeoutMs;
};

// One line of a symbolized trace, as symbolize_stack() hands it out. The
// strings are never null ("" when unknown) and live only until the visitor
// returns.
struct SymbolizedFrame {
  std::size_t number;            // position in the trace; inlined frames count
  std::size_t index;             // which pcs[] entry this line belongs to
  std::uintptr_t pc;             // pcs[index] as captured
  const char* function;          // demangled (symbolizer) or mangled (dladdr) name
  bool function_from_dladdr;     // function is a dladdr name: print symbol_offset
  std::uintptr_t symbol_offset;  // lookup pc - symbol address, for dladdr names
  const char* location;          // "file:line"
  const char* module;            // path of the executable or shared object
  std::uintptr_t module_offset;  // pc - module load bias (the file address)
};

using FrameVisitor = void (*)(const SymbolizedFrame& frame, void* context) noexcept;

// Symbolizes pcs[0..n) as print_stack() does and calls `visit` once per line,
// in order, instead of printing (for other output formats such as JSON).
// Same limits, deadline, fallbacks and safety as print_stack().
void symbolize_stack(const std::uintptr_t* pcs, std::size_t n, const SymbolizerConfig& config,
                     bool first_is_fault_pc, FrameVisitor visit, void* context) noexcept;

// Prints pcs[0..n), innermost first, one line per frame (inlined frames
// reported by llvm-symbolizer get lines of their own, with the same address):
//   "    #3 0x55d1c0a1b2c3 in ns::fn(int) /src/a.cpp:12 (/usr/bin/prog+0x12c3)"
// Parts that are unknown are left out: "in function" without a symbol,
// "file:line" without debug info, "(module+0x...)" without a module. Frames are
// looked up at pc - 1 (a return address points after its call), except
// pcs[0] when `first_is_fault_pc` is set (the faulting instruction itself, as
// capture_from_context() returns it). At most 256 frames are printed.
//
// Each line is appended to `out`, and `out` is flushed to `fd` after every
// line (whatever `out` held before is flushed first), so `out` can be small
// (>= 512 bytes keeps lines whole). With fd < 0 nothing is written and the
// lines accumulate in `out` (tests).
//
// Spawns at most one child per distinct module (llvm-symbolizer: one child
// for all frames). The child's environment is ours without LD_PRELOAD,
// LD_AUDIT and GUARDARENA_* (so it does not run under this allocator), its
// stderr goes to /dev/null, and it inherits no descriptors but its stdin and
// stdout. Returns within about timeout_ms. Preserves errno. Thread-safe; may
// be called from a signal handler (see the file comment for dladdr).
void print_stack(RawWriter& out, int fd, const std::uintptr_t* pcs, std::size_t n,
                 const SymbolizerConfig& config, bool first_is_fault_pc = false) noexcept;

// True when the configuration names an external symbolizer that exists and is
// executable (one access(2) per candidate; it does not run it).
bool symbolizer_available(const SymbolizerConfig& config) noexcept;

}  // namespace guardarena::report
