// Secure execution for both front ends (shim and pmr): in a set-user-ID,
// set-group-ID or capability-raising program the options come from a less
// privileged caller, so only what options.inc marks safe is honoured.
#pragma once

#include "options/options.h"

namespace guardarena::report {

// In a secure-execution process (AT_SECURE), applies apply_secure_policy() to
// `o` and writes one line to stderr naming the options it ignored (nothing
// when none was). Outside one, leaves `o` alone. Returns whether the process
// is in secure-execution mode. No allocation.
bool enforce_secure_execution(Options& o) noexcept;

}  // namespace guardarena::report
