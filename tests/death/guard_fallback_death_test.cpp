// On a "kernel" that accepts MADV_GUARD_INSTALL and installs nothing
// (simulated with a seccomp filter in the death test's child), a guarded
// resource still stops an overflow at the write: backend=auto chooses
// mprotect by itself, backend=guard does too and says so once.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "guardarena/guardarena.hpp"
#include "support/old_kernel.h"

namespace guardarena {
namespace {

[[gnu::noinline]] void overflow_one_byte(const char* options) {
  if (!testing::fake_guard_markers(nullptr)) std::_Exit(3);
  guarded_resource arena{options};
  if (std::strcmp(arena.stats().backend, "mprotect") != 0) std::_Exit(4);
  auto* p = static_cast<volatile char*>(arena.allocate(64, 1));
  p[64] = 'x';
  std::_Exit(5);  // not reached: the write faults
}

TEST(GuardFallbackDeathTest, AutoChoosesMprotectWhenTheAdviceIsIgnored) {
  if (std::string why; !testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  EXPECT_EXIT(overflow_one_byte("backend=auto"), ::testing::KilledBySignal(SIGSEGV),
              "heap-buffer-overflow(.|\n)*WRITE at 0x[0-9a-f]+(.|\n)*0 bytes after the 64-byte");
}

TEST(GuardFallbackDeathTest, ForcedGuardBackendWarnsOnceAndStillGuards) {
  if (std::string why; !testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  EXPECT_EXIT(overflow_one_byte("backend=guard"), ::testing::KilledBySignal(SIGSEGV),
              "warning: backend=guard: MADV_GUARD_INSTALL is accepted here but does not make "
              "pages inaccessible; using mprotect guards\n(.|\n)*heap-buffer-overflow");
}

}  // namespace
}  // namespace guardarena
