// Frame printing for reports, text or JSON, on top of the symbolizer
// (symbolizer.h: llvm-symbolizer/addr2line child under a deadline, dladdr
// fallback, no malloc). This file only formats.
#include "report/stack_printer.h"

#include "os/raw_writer.h"
#include "report/symbolizer.h"

namespace guardarena {
namespace {

struct PrintContext {
  RawWriter* w;
  bool json;
  bool hide_addresses;
  std::size_t printed;
  char* first_frame;
  std::size_t first_frame_cap;
  // first_frame holds the first frame of a system library (libc's strcpy,
  // ...) until a frame of the program itself replaces it.
  bool system_frame_held;
};

// The public entry points a program calls (inlined into its frame or not)
// that can start a stack: std::pmr::memory_resource's allocate/deallocate.
// The shim's exported functions never appear: stacks start at their caller.
bool is_entry_point(const char* function) noexcept {
  constexpr char kMemoryResource[] = "std::pmr::memory_resource::";
  for (std::size_t i = 0; i + 1 < sizeof kMemoryResource; ++i) {
    if (function[i] != kMemoryResource[i]) return false;
  }
  return true;
}

bool starts_with(const char* s, const char* prefix) noexcept {
  while (*prefix != '\0') {
    if (*s++ != *prefix++) return false;
  }
  return true;
}

// A system library (libc, libstdc++, ...): the bug is in its caller, as
// "strcpy" in frame #0 of an overflow by the program's strcpy call.
bool is_system_module(const char* module) noexcept {
  return starts_with(module, "/lib/") || starts_with(module, "/lib64/") ||
         starts_with(module, "/usr/lib/") || starts_with(module, "/usr/lib64/");
}

void describe_first_frame(const report::SymbolizedFrame& f, char* out, std::size_t cap) noexcept {
  RawWriter w(out, cap - 1);
  if (f.function[0] != '\0') w.str(f.function);
  if (f.location[0] != '\0') {
    if (w.size() != 0) w.ch(' ');
    w.str(f.location);
  } else if (f.module[0] != '\0') {
    if (w.size() != 0) w.ch(' ');
    w.ch('(').str(f.module).ch('+').hex(f.module_offset).ch(')');
  }
  out[w.size()] = '\0';
}

void visit_frame(const report::SymbolizedFrame& f, void* ctx) noexcept {
  auto* pc = static_cast<PrintContext*>(ctx);
  RawWriter& w = *pc->w;
  if (pc->first_frame != nullptr && pc->first_frame_cap > 0 && !is_entry_point(f.function)) {
    // The first frame of the program; failing one, the stack's first frame.
    if (!is_system_module(f.module)) {
      describe_first_frame(f, pc->first_frame, pc->first_frame_cap);
      pc->first_frame = nullptr;
    } else if (!pc->system_frame_held) {
      describe_first_frame(f, pc->first_frame, pc->first_frame_cap);
      pc->system_frame_held = true;
    }
  }
  if (pc->json) {
    if (pc->printed != 0) w.ch(',');
    w.str("{\"frame\":").dec(f.number).str(",\"pc\":\"");
    if (pc->hide_addresses) {
      w.str("<hidden>");
    } else {
      w.hex(f.pc);
    }
    w.str("\",\"function\":");
    w.json_string(f.function);
    w.str(",\"location\":");
    w.json_string(f.location);
    w.str(",\"module\":");
    w.json_string(f.module);
    w.str(",\"offset\":\"").hex(f.module_offset).str("\"}");
  } else {
    w.str("    #").dec(f.number);
    if (!pc->hide_addresses) w.ch(' ').hex(f.pc);
    if (f.function[0] != '\0') {
      w.str(" in ").str(f.function);
      if (f.function_from_dladdr) w.ch('+').hex(f.symbol_offset);
    }
    if (f.location[0] != '\0') w.ch(' ').str(f.location);
    if (f.module[0] != '\0') w.str(" (").str(f.module).ch('+').hex(f.module_offset).ch(')');
    w.ch('\n');
  }
  ++pc->printed;
}

// The shim's thread start glue (preload/thread_start.cpp), placed in a
// section of its own: it sits at the outer end of every stack of a thread
// the program created and is no part of the program's story. Weak: only the
// preload library has the section.
extern "C" const char __start_guardarena_thread_glue[] __attribute__((weak, visibility("hidden")));
extern "C" const char __stop_guardarena_thread_glue[] __attribute__((weak, visibility("hidden")));

bool is_thread_glue(std::uintptr_t pc) noexcept {
  const auto lo = reinterpret_cast<std::uintptr_t>(__start_guardarena_thread_glue);
  const auto hi = reinterpret_cast<std::uintptr_t>(__stop_guardarena_thread_glue);
  // Return addresses point after the call: pc - 1 lies in the caller.
  return lo != 0 && pc - 1 >= lo && pc - 1 < hi;
}

}  // namespace

void print_frames(RawWriter& w, const std::uintptr_t* pcs, std::size_t n,
                  const StackPrintOptions& o) noexcept {
  report::SymbolizerConfig config;
  // symbolize=0: no child process, names from dladdr and module+offset only.
  config.path = o.symbolize ? o.symbolizer_path : "";
  PrintContext ctx{&w, o.json, o.hide_addresses, 0, o.first_frame, o.first_frame_cap, false};
  // Secure execution: dladdr names and module+offset only, never a child.
  if (o.hide_addresses) config.path = "";
  std::uintptr_t kept[64];
  std::size_t m = 0;
  for (std::size_t i = 0; i < n && m < 64; ++i) {
    if (i == 0 && o.first_is_pc) {
      kept[m++] = pcs[i];
    } else if (!is_thread_glue(pcs[i])) {
      kept[m++] = pcs[i];
    }
  }
  report::symbolize_stack(kept, m, config, o.first_is_pc, visit_frame, &ctx);
}

}  // namespace guardarena
