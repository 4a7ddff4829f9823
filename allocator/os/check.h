// GUARDARENA_CHECK: invariants that must hold in every build. A failed check
// writes one line to stderr with write(2) and aborts; it never allocates or
// locks, so every layer (the OS layer, the core, the shim and the fault
// handler alike) may use it.
#pragma once

namespace guardarena {
// Writes "guardarena: internal check failed: <msg> (<file>:<line>)" to fd 2
// and aborts. Async-signal-safe.
[[noreturn]] void check_failed(const char* file, int line, const char* msg) noexcept;
}  // namespace guardarena

#define GUARDARENA_CHECK(cond, msg)                                                        \
  do {                                                                                     \
    if (__builtin_expect(!(cond), 0)) ::guardarena::check_failed(__FILE__, __LINE__, msg); \
  } while (0)
