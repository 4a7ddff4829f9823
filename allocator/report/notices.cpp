// Start-up notices (notices.h): raw write(2), no allocation.
#include "report/notices.h"

#include "os/os_linux.h"
#include "os/raw_writer.h"

namespace guardarena::report {

void warn_if_guard_markers_ignored(const Options& o) noexcept {
  if (o.backend != Backend::kGuard || os::guard_support() != os::GuardSupport::kIgnored) return;
  char line[256];
  RawWriter w(line, sizeof line);
  w.str(
       "guardarena: warning: backend=guard: MADV_GUARD_INSTALL is accepted here but does not "
       "make pages inaccessible; using mprotect guards\n")
      .flush_to(2);
}

}  // namespace guardarena::report
