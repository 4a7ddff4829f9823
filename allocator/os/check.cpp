// The die path of GUARDARENA_CHECK: a raw write(2) and abort(), no malloc,
// no stdio, so it works from any layer and inside the fault handler.
#include "os/check.h"

#include <cstdint>
#include <cstdlib>

#include "os/raw_writer.h"

namespace guardarena {

[[noreturn]] void check_failed(const char* file, int line, const char* msg) noexcept {
  char buf[512];
  RawWriter w(buf, sizeof buf);
  w.str("guardarena: internal check failed: ")
      .str(msg)
      .str(" (")
      .str(file)
      .ch(':')
      .dec(static_cast<std::uint64_t>(line))
      .str(")\n");
  w.flush_to(2);
  ::abort();
}

}  // namespace guardarena
