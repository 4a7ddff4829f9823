// GUARDARENA_CHECK: invariants that must hold in every build. A failed check
// prints one line through the raw writer and aborts; it never allocates, so it
// is usable from the OS layer, the shim and the fault handler alike.
#pragma once

namespace guardarena {
[[noreturn]] void check_failed(const char* file, int line, const char* msg) noexcept;
}  // namespace guardarena

#define GUARDARENA_CHECK(cond, msg)                                                        \
  do {                                                                                     \
    if (__builtin_expect(!(cond), 0)) ::guardarena::check_failed(__FILE__, __LINE__, msg); \
  } while (0)

#ifndef NDEBUG
#define GUARDARENA_DCHECK(cond, msg) GUARDARENA_CHECK(cond, msg)
#else
#define GUARDARENA_DCHECK(cond, msg) \
  do {                               \
  } while (0)
#endif
