// The warning line of the secure-execution policy; the policy itself is the
// `secure` column of options.inc (options/secure_policy.cpp).
#include "report/secure_options.h"

#include "os/secure_execution.h"
#include "os/raw_writer.h"

namespace guardarena::report {

bool enforce_secure_execution(Options& o) noexcept {
  if (!os::secure_execution()) return false;
  char names[768];
  RawWriter list(names, sizeof names - 1);
  if (apply_secure_policy(o, list) == 0) return true;
  names[list.size()] = '\0';
  char line[1024];
  RawWriter w(line, sizeof line);
  w.str("guardarena: secure execution (setuid, setgid or file capabilities): ignored options: ")
      .str(names)
      .ch('\n');
  w.flush_to(2);
  return true;
}

}  // namespace guardarena::report
