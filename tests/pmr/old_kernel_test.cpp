// The backends on a kernel without guard markers (before Linux 6.13),
// simulated with seccomp in a fresh process (support/old_kernel.h):
// backend=guard refuses to run (std::runtime_error), backend=auto falls
// back to mprotect.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "support/old_kernel.h"

namespace guardarena {
namespace {

struct Output {
  int status = -1;
  std::string text;
};

Output run_fresh(const char* child_case) {
  Output o;
  std::string cmd = std::string(GUARDARENA_FRESH_PROCESS_CHILD) + " " + child_case + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) o.text += buf;
  o.status = ::pclose(p);
  return o;
}

TEST(OldKernelTest, BackendGuardThrowsNamingTheMissingFeature) {
  if (std::string why; !testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  Output o = run_fresh("GuardBackendWithoutGuardMarkers");
  ASSERT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.status << ": " << o.text;
  EXPECT_EQ(o.text,
            "std::runtime_error: guardarena: backend=guard needs MADV_GUARD_INSTALL (Linux "
            "6.13+); this kernel lacks it (use backend=mprotect or auto)\n");
}

TEST(OldKernelTest, BackendAutoFallsBackToMprotect) {
  if (std::string why; !testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  Output o = run_fresh("AutoBackendWithoutGuardMarkers");
  ASSERT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << o.status << ": " << o.text;
  EXPECT_EQ(o.text, "constructed: backend mprotect\n");
}

}  // namespace
}  // namespace guardarena
