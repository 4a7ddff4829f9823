// One-line notices on stderr that the front ends (shim, pmr) give once, at
// start-up, about how the arena they asked for was set up.
#pragma once

#include "options/options.h"

namespace guardarena::report {

// backend=guard on a kernel (or an emulator, or a sandbox) that accepts
// MADV_GUARD_INSTALL without enforcing it: the arena uses mprotect guards
// instead, and the user who forced the backend is told so in one line.
// Nothing for backend=auto, which falls back silently (print_stats says it).
void warn_if_guard_markers_ignored(const Options& o) noexcept;

}  // namespace guardarena::report
