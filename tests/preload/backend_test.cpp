// Correct programs, the C and C++ API contracts and real programs (python3,
// perl, bash, sqlite3, git, gcc, g++, cmake) under the shim on both guard
// backends: each must print exactly what it prints without it.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "options/options.h"
#include "os/os_linux.h"
#include "preload_runner.h"
#include "support/kernel_facts.h"
#include "support/old_kernel.h"

namespace {

using namespace guardarena::preload_testing;
namespace fs = std::filesystem;

// ---- correct programs and the API contract, per backend --------------------

class BackendTest : public ::testing::TestWithParam<BackendParam> {};

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::ValuesIn(kBackends), backend_name);

TEST_P(BackendTest, CApiContract) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run({.argv = {program("api_contract")}, .options = GetParam().options});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.err, "");
}

// Fast mode has short paths of its own for warm slots: same contract.
TEST(FastModeTest, CApiContract) {
  Result r = run({.argv = {program("api_contract")}, .options = "mode=fast"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.err, "");
}

TEST_P(BackendTest, CxxApiContract) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run({.argv = {program("api_contract_cxx")}, .options = GetParam().options});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.err, "");
}

TEST_P(BackendTest, UsableSizeIsTheRequestedSize) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run({.argv = {program("usable_size"), "exact"}, .options = GetParam().options});
  EXPECT_TRUE(r.exited(0)) << r.describe();
}

TEST_P(BackendTest, CleanCProgramUnchanged) {
  SKIP_IF_UNSUPPORTED(GetParam());
  expect_same_output({program("clean_c_workload")}, GetParam().options);
}

TEST_P(BackendTest, CleanCxxProgramUnchanged) {
  SKIP_IF_UNSUPPORTED(GetParam());
  expect_same_output({program("clean_cxx_workload")}, GetParam().options);
}

TEST_P(BackendTest, ForkFromThreadsLeavesAUsableHeapAndSpawnExecWork) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run(
      {.argv = {program("fork_threads")}, .options = GetParam().options, .timeout_seconds = 120});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_NE(r.out.find("forked children ok: 40/40"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("posix_spawn ok: 1"), std::string::npos) << r.describe();
  EXPECT_NE(r.out.find("exec ok: 1"), std::string::npos) << r.describe();
}

TEST_P(BackendTest, AllocationsBeforeInitAreServedAndFreedLater) {
  SKIP_IF_UNSUPPORTED(GetParam());
  expect_same_output({program("bootstrap_free")}, GetParam().options);
}

TEST_P(BackendTest, MallocFromInsideAFaultReportNeitherRecursesNorDeadlocks) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run({.argv = {program("reenter_write"), "overflow"},
                  .options = GetParam().options,
                  .timeout_seconds = 60});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  EXPECT_TRUE(contains(r.err, "ERROR: guardarena: heap-buffer-overflow")) << r.describe();
  EXPECT_TRUE(contains(r.err, "SUMMARY: guardarena: heap-buffer-overflow")) << r.describe();
}

TEST_P(BackendTest, MallocFromInsideAFreeTimeReportNeitherRecursesNorDeadlocks) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run({.argv = {program("reenter_write"), "double"},
                  .options = GetParam().options,
                  .timeout_seconds = 60});
  EXPECT_TRUE(r.signaled(SIGABRT)) << r.describe();
  EXPECT_TRUE(contains(r.err, "ERROR: guardarena: double-free")) << r.describe();
  EXPECT_TRUE(contains(r.err, "SUMMARY: guardarena: double-free")) << r.describe();
}

TEST_P(BackendTest, MallocFromInsideTheExitStatisticsIsServed) {
  SKIP_IF_UNSUPPORTED(GetParam());
  Result r = run({.argv = {program("reenter_write"), "ok"},
                  .options = with_backend(GetParam(), "print_stats=1"),
                  .timeout_seconds = 60});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "done\n");
  EXPECT_TRUE(contains(r.err, "guardarena: statistics")) << r.describe();
}

// ---- real programs, full mode, both backends --------------------------------

class RealProgramTest : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override { SKIP_IF_UNSUPPORTED(GetParam()); }
  std::string options() const { return GetParam().options; }
};

INSTANTIATE_TEST_SUITE_P(Backends, RealProgramTest, ::testing::ValuesIn(kBackends), backend_name);

// The first python3 whose standard library ships its test package
// (Debian's /usr/bin/python3 needs libpython3.X-testsuite for it).
std::string python_with_test_suite() {
  for (const char* candidate : {"python3", "/usr/bin/python3"}) {
    if (run({.argv = {candidate, "-c", "import test.support, test.test_dict, test.test_bisect"},
             .preload = false})
            .exited(0)) {
      return candidate;
    }
  }
  return "";
}

TEST_P(RealProgramTest, Python) {
  REQUIRE_TOOL("python3");
  expect_same_output({"python3", kRealPrograms + "/workload.py"}, options(),
                     {"PYTHONMALLOC=malloc"});
}

// Summary lines of `python -m test` (the rest has timings).
std::string python_test_summary(const std::string& out) {
  std::string s;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (starts_with(line, "Total tests:") || starts_with(line, "Result:") ||
        starts_with(line, "Total test files:")) {
      s += line + "\n";
    }
  }
  return s;
}

TEST_P(RealProgramTest, PythonTestSuite) {
  std::string python = python_with_test_suite();
  if (python.empty())
    GTEST_SKIP()
        << "no python3 with its test package (Debian: apt-get install libpython3.11-testsuite)";
  std::vector<std::string> argv = {python, "-m", "test", "test_dict", "test_bisect"};
  Result native = run({.argv = argv, .preload = false, .env = {"PYTHONMALLOC=malloc"}});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim = run(
      {.argv = argv, .options = options(), .env = {"PYTHONMALLOC=malloc"}, .timeout_seconds = 280});
  EXPECT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_NE(python_test_summary(shim.out).find("Result: SUCCESS"), std::string::npos)
      << shim.describe();
  EXPECT_EQ(python_test_summary(shim.out), python_test_summary(native.out));
  EXPECT_EQ(without_exhaustion_warning(shim.err), native.err);
}

TEST_P(RealProgramTest, Perl) {
  REQUIRE_TOOL("perl");
  expect_same_output({"perl", kRealPrograms + "/workload.pl"}, options());
}

TEST_P(RealProgramTest, Bash) {
  REQUIRE_TOOL("bash");
  expect_same_output({"bash", kRealPrograms + "/workload.sh"}, options());
}

TEST_P(RealProgramTest, Sqlite) {
  REQUIRE_TOOL("sqlite3");
  expect_same_output({"sqlite3", "-batch", ":memory:", ".read " + kRealPrograms + "/workload.sql"},
                     options());
}

TEST_P(RealProgramTest, Git) {
  REQUIRE_TOOL("git");
  TempDir native_dir;
  TempDir shim_dir;
  std::vector<std::string> argv = {"bash", kRealPrograms + "/git_workload.sh"};
  Result native = run({.argv = argv, .preload = false, .cwd = native_dir.path()});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim = run({.argv = argv, .options = options(), .cwd = shim_dir.path()});
  EXPECT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_EQ(shim.out, native.out);
  EXPECT_EQ(without_exhaustion_warning(shim.err), native.err);
}

TEST_P(RealProgramTest, GccCompilesAndLinksAProgram) {
  REQUIRE_TOOL("gcc");
  TempDir dir;
  std::string src = kProgramSources + "/clean_c_workload.c";
  Result native = run(
      {.argv = {"gcc", "-O2", "-pthread", "-o", dir.path() + "/native", src}, .preload = false});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim = run(
      {.argv = {"gcc", "-O2", "-pthread", "-o", dir.path() + "/shim", src}, .options = options()});
  ASSERT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_EQ(shim.out + shim.err, native.out + native.err);
  // Same compiler, same input: the executables are byte-identical.
  EXPECT_EQ(read_file(dir.path() + "/shim"), read_file(dir.path() + "/native"));
  Result built = run({.argv = {dir.path() + "/shim"}, .preload = false});
  EXPECT_TRUE(built.exited(0)) << built.describe();
}

TEST_P(RealProgramTest, GxxCompilesAFile) {
  REQUIRE_TOOL("g++");
  TempDir dir;
  std::string src = kRealPrograms + "/compile_me.cpp";
  Result native =
      run({.argv = {"g++", "-std=c++17", "-O1", "-c", "-o", dir.path() + "/native.o", src},
           .preload = false});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim = run({.argv = {"g++", "-std=c++17", "-O1", "-c", "-o", dir.path() + "/shim.o", src},
                     .options = options()});
  ASSERT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_EQ(shim.out + shim.err, native.out + native.err);
  EXPECT_EQ(read_file(dir.path() + "/shim.o"), read_file(dir.path() + "/native.o"));
}

TEST_P(RealProgramTest, CmakeVersion) {
  REQUIRE_TOOL("cmake");
  expect_same_output({"cmake", "--version"}, options());
}

}  // namespace
