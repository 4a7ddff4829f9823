// Frame printing for reports: module+offset from dladdr, names from the
// symbolizer when enabled. dladdr takes the loader's lock in theory; reports
// run after the fault, when the program is about to die anyway, and a hang is
// bounded by the symbolizer timeout (see symbolizer.cpp).
#include "report/stack_printer.h"

#include <dlfcn.h>

#include "report/raw_writer.h"

namespace guardarena {

void print_frames(RawWriter& w, const std::uintptr_t* pcs, std::size_t n, const StackPrintOptions& o) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    Dl_info info{};
    bool have = ::dladdr(reinterpret_cast<void*>(pcs[i]), &info) != 0;
    const char* module = have && info.dli_fname != nullptr ? info.dli_fname : "?";
    std::uintptr_t off = have ? pcs[i] - reinterpret_cast<std::uintptr_t>(info.dli_fbase) : pcs[i];
    const char* fn = have && info.dli_sname != nullptr ? info.dli_sname : "??";
    if (o.json) {
      if (i != 0) w.ch(',');
      w.str("{\"pc\":\"").hex(pcs[i]).str("\",\"function\":\"").str(fn).str("\",\"module\":\"").str(module)
          .str("\",\"offset\":\"").hex(off).str("\"}");
    } else {
      w.str("    #").dec(i).ch(' ').hex(pcs[i]).str(" in ").str(fn).str(" (").str(module).ch('+').hex(off).str(")\n");
    }
  }
}

}  // namespace guardarena
