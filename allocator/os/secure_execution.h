// Whether the process runs in secure-execution mode: the kernel set AT_SECURE
// because the program is set-user-ID or set-group-ID or gained file
// capabilities, so its environment belongs to a less privileged caller.
// Async-signal-safe (getauxval reads the saved auxiliary vector).
#pragma once

#include <sys/auxv.h>

namespace guardarena::os {

inline bool secure_execution() noexcept {
  return ::getauxval(AT_SECURE) != 0;
}

}  // namespace guardarena::os
