// Process life under the shim on both guard backends: fork (from threads,
// nested, posix_spawn), signal handlers that allocate or fault, and dlopen
// of libraries with big TLS or allocating constructors.
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

class ForkTest : public BothBackends {};
INSTANTIATE_TEST_SUITE_P(Backends, ForkTest, ::testing::ValuesIn(kBackends), backend_name);
class SignalTest : public BothBackends {};
INSTANTIATE_TEST_SUITE_P(Backends, SignalTest, ::testing::ValuesIn(kBackends), backend_name);
class DlopenTest : public BothBackends {};
INSTANTIATE_TEST_SUITE_P(Backends, DlopenTest, ::testing::ValuesIn(kBackends), backend_name);

TEST_P(ForkTest, ChildrenOfChildrenCanForkInEveryMode) {
  for (const char* options : {"mode=full", "mode=fast"}) {
    Result r =
        run({.argv = {program("nested_fork")}, .options = opts(options), .timeout_seconds = 30});
    EXPECT_TRUE(r.exited(0)) << options << "\n" << r.describe();
    EXPECT_EQ(r.out, "nested forks: ok\n") << options;
  }
}

TEST_P(ForkTest, HundredsOfForksWhileOtherThreadsAllocateAndPrint) {
  for (const char* options : {"mode=full", "mode=fast"}) {
    Result r = run(
        {.argv = {program("fork_loop_threads")}, .options = opts(options), .timeout_seconds = 120});
    EXPECT_TRUE(r.exited(0)) << options << "\n" << r.describe();
    EXPECT_EQ(r.out, "forks: 300 ok\n") << options;
  }
}

TEST_P(ForkTest, PosixSpawnVforkExecAndSystem) {
  Result r = run({.argv = {program("spawn_variants")}, .options = opts()});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "spawned: 3 of 3\n");
}

TEST_P(SignalTest, MallocAndFreeFromAHandlerThatInterruptsMallocFinish) {
  for (const char* options : {"mode=full", "mode=fast", "sample_rate=5"}) {
    Result r =
        run({.argv = {program("signal_malloc")}, .options = opts(options), .timeout_seconds = 120});
    EXPECT_TRUE(r.exited(0)) << options << "\n" << r.describe();
    EXPECT_EQ(r.out, "handler ran: yes\n") << options;
  }
}

TEST_P(SignalTest, FaultInsideASignalHandlerIsReported) {
  Result r =
      run({.argv = {program("signal_malloc"), "fault"}, .options = opts(), .timeout_seconds = 60});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  EXPECT_TRUE(contains(r.err, "ERROR: guardarena: heap-buffer-overflow")) << r.describe();
  EXPECT_TRUE(contains(r.err, "in on_alarm .*signal_malloc.c:[0-9]+")) << r.describe();
}

TEST_P(DlopenTest, LibraryWithBigTlsAndAllocatingConstructorsLoadsAndUnloadsRepeatedly) {
  std::string lib = std::string(GUARDARENA_PROGRAMS_DIR) + "/libpreload_big_tls.so";
  for (const char* options : {"mode=full", "mode=fast"}) {
    Result r = run(
        {.argv = {program("dlopen_loop"), lib}, .options = opts(options), .timeout_seconds = 120});
    EXPECT_TRUE(r.exited(0)) << options << "\n" << r.describe();
    EXPECT_EQ(r.out, "dlopen rounds with errors: 0\n") << options;
  }
}

TEST_P(DlopenTest, AnotherPreloadedLibraryWrappingWriteWorksAlongside) {
  std::string both = std::string(GUARDARENA_PRELOAD_LIB) + ":" + GUARDARENA_PROGRAMS_DIR +
                     "/libpreload_write_wrapper.so";
  Result ok = run(
      {.argv = {program("clean_c_workload")}, .options = opts(), .env = {"LD_PRELOAD=" + both}});
  EXPECT_TRUE(ok.exited(0)) << ok.describe();
  Result bug = run({.argv = {program("overflow_write_malloc")},
                    .options = opts(),
                    .env = {"LD_PRELOAD=" + both}});
  EXPECT_TRUE(bug.signaled(SIGSEGV)) << bug.describe();
  EXPECT_TRUE(contains(bug.err, "ERROR: guardarena: heap-buffer-overflow")) << bug.describe();
}

}  // namespace
