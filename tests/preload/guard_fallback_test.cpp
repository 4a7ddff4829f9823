// The shim on a "kernel" that accepts MADV_GUARD_INSTALL and installs nothing
// (a seccomp filter installed before execve simulates it, as an emulator or a
// sandbox behaves): the overflow must still stop at the write, with the same
// report as on a kernel with guard markers.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/child_process.h"
#include "support/old_kernel.h"

namespace guardarena {
namespace {

namespace fs = std::filesystem;

class GuardFallbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why; !testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
    char templ[] = "/tmp/guardarena-fallback-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  testing::ChildOutcome run_overflow(const std::string& options) {
    const std::string program = std::string(GUARDARENA_PROGRAMS_DIR) + "/overflow_write_malloc";
    return testing::run_child({program},
                              {"LD_PRELOAD=" GUARDARENA_PRELOAD_LIB,
                               "GUARDARENA_OPTIONS=" + options, "PATH=/usr/bin:/bin"},
                              dir_, [] { return testing::fake_guard_markers(nullptr); });
  }
  static void expect_stopped_at_the_write(const testing::ChildOutcome& o) {
    EXPECT_TRUE(o.signaled(SIGSEGV)) << o.describe();
    EXPECT_EQ(o.out, "reached the statement\n") << o.describe();
    EXPECT_NE(o.err.find("ERROR: guardarena: heap-buffer-overflow"), std::string::npos)
        << o.describe();
    EXPECT_NE(o.err.find("WRITE at 0x"), std::string::npos) << o.describe();
    EXPECT_NE(o.err.find("overflow_write_malloc.c:11"), std::string::npos) << o.describe();
  }
  fs::path dir_;
};

TEST_F(GuardFallbackTest, DefaultOptionsFallBackToMprotectSilently) {
  testing::ChildOutcome o = run_overflow("print_stats=1");
  expect_stopped_at_the_write(o);
  EXPECT_EQ(o.err.find("warning"), std::string::npos) << o.describe();
}

TEST_F(GuardFallbackTest, ForcedGuardBackendWarnsInOneLine) {
  testing::ChildOutcome o = run_overflow("backend=guard");
  expect_stopped_at_the_write(o);
  EXPECT_NE(o.err.find("guardarena: warning: backend=guard: MADV_GUARD_INSTALL is accepted here "
                       "but does not make pages inaccessible; using mprotect guards\n"),
            std::string::npos)
      << o.describe();
}

TEST_F(GuardFallbackTest, StatisticsNameTheProbesAnswer) {
  const std::string program = std::string(GUARDARENA_PROGRAMS_DIR) + "/overflow_write_malloc";
  testing::ChildOutcome o = testing::run_child(
      {program, "ok"}, {"LD_PRELOAD=" GUARDARENA_PRELOAD_LIB, "GUARDARENA_OPTIONS=print_stats=1"},
      dir_, [] { return testing::fake_guard_markers(nullptr); });
  EXPECT_TRUE(o.exited(0)) << o.describe();
  EXPECT_NE(o.err.find("backend mprotect (guard markers: accepted but not enforced)"),
            std::string::npos)
      << o.describe();
}

}  // namespace
}  // namespace guardarena
