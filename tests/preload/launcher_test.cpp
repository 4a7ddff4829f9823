// The guardarena launcher: flags, options, exit statuses, --both-sides and
// finding the library in an install tree.
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

// ---- the launcher -------------------------------------------------------------------

Result launch(std::vector<std::string> args, std::vector<std::string> env = {}) {
  args.insert(args.begin(), kLauncher);
  return run({.argv = args, .preload = false, .env = std::move(env)});
}

TEST(LauncherTest, HelpListsTheLauncherFlagsAndEveryOption) {
  Result r = launch({"--help"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  for (const char* flag :
       {"--mode=full|fast|sample", "--sample-rate=N", "--protect-below", "--both-sides",
        "--log-path=P", "--json", "--option NAME=VALUE", "--version"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
  const guardarena::OptionInfo* table = guardarena::option_table();
  for (std::size_t i = 0; i < guardarena::kOptionCount; ++i) {
    EXPECT_NE(r.out.find(std::string("  ") + table[i].name + "="), std::string::npos)
        << table[i].name;
  }
}

// --both-sides: an under-read is caught only by the run with blocks against
// the guard below, an over-read only by the other; either way the launcher
// prints that run's report and fails with its status.
TEST(LauncherTest, BothSidesCatchesAnUnderReadAndAnOverRead) {
  struct Case {
    const char* program;
    const char* kind;
    int caught_in_run;
  };
  for (const Case& c : {Case{"underflow_read", "heap-buffer-underflow", 2},
                        Case{"overflow_read_malloc", "heap-buffer-overflow", 1}}) {
    SCOPED_TRACE(c.program);
    Result r = launch({"--both-sides", "--", program(c.program)});
    EXPECT_TRUE(r.exited(128 + SIGSEGV)) << r.describe();
    EXPECT_EQ(count_lines_with(r.err, kError), 1u) << r.describe();
    EXPECT_EQ(count_lines_with(r.out, "reached the statement"), 2u) << r.describe();
    EXPECT_EQ(count_lines_with(r.out, "after the statement"), 1u) << r.describe();
    auto [file, line] = bug_line(c.program);
    const std::string file_re = std::regex_replace(file, std::regex("\\."), "\\.");
    // The report sits between the banner of the run that caught the bug and
    // that run's status line.
    const std::string banner = "guardarena: run " + std::to_string(c.caught_in_run) + " of 2 ";
    EXPECT_TRUE(contains(r.err, banner + "[^\n]*\n[^]*ERROR: guardarena: " + c.kind +
                                    " on address[^]*\nREAD at [^]*" + file_re + ":" +
                                    std::to_string(line) + "[^]*" + banner +
                                    "\\([^)]*\\) ended with status " +
                                    std::to_string(128 + SIGSEGV) + "\n"))
        << r.describe();
  }
}

TEST(LauncherTest, BothSidesOfACorrectProgramSucceedAndRunItTwice) {
  Result r = launch({"--both-sides", "--", program("underflow_read"), "ok"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out,
            "reached the statement\nafter the statement\nread a\n"
            "reached the statement\nafter the statement\nread a\n");
  EXPECT_EQ(r.err,
            "guardarena: run 1 of 2 (protect_below=0): blocks against the guard page above them\n"
            "guardarena: run 1 of 2 (protect_below=0) ended with status 0\n"
            "guardarena: run 2 of 2 (protect_below=1): blocks against the guard page below them\n"
            "guardarena: run 2 of 2 (protect_below=1) ended with status 0\n");
}

TEST(LauncherTest, BothSidesExitsWithTheFirstNonZeroStatus) {
  Result r = launch({"--both-sides", "--", "sh", "-c", "exit 7"});
  EXPECT_TRUE(r.exited(7)) << r.describe();
  EXPECT_EQ(count_lines_with(r.err, "ended with status 7"), 2u) << r.describe();
}

TEST(LauncherTest, Version) {
  Result r = launch({"--version"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, std::string("guardarena ") + GUARDARENA_PROJECT_VERSION + "\n");
}

TEST(LauncherTest, MissingProgramIsAClearError) {
  Result r = launch({"--mode=full"});
  EXPECT_TRUE(r.exited(2)) << r.describe();
  EXPECT_TRUE(contains(r.err, "^guardarena: no program to run")) << r.describe();
  Result dashes = launch({"--"});
  EXPECT_TRUE(dashes.exited(2)) << dashes.describe();
}

TEST(LauncherTest, ProgramThatCannotRunIsAClearError) {
  Result r = launch({"--", "/nonexistent/program"});
  EXPECT_TRUE(r.exited(127)) << r.describe();
  EXPECT_EQ(r.err, "guardarena: cannot run '/nonexistent/program': No such file or directory\n");
}

TEST(LauncherTest, PassesTheExitStatusAndTheSignalThrough) {
  Result r = launch({"--", "sh", "-c", "exit 7"});
  EXPECT_TRUE(r.exited(7)) << r.describe();
  Result bug = launch({program("overflow_write_malloc")});
  EXPECT_TRUE(bug.signaled(SIGSEGV)) << bug.describe();
  EXPECT_TRUE(contains(bug.err, "ERROR: guardarena: heap-buffer-overflow")) << bug.describe();
}

TEST(LauncherTest, TranslatesFlagsIntoOptionsAndPreloadsTheLibrary) {
  Result r = launch({"--mode=sample", "--protect-below", "--log-path=/tmp/ga", "--json", "--option",
                     "quarantine_slots=5", "--backend=mprotect", "--quarantine-bytes=1M", "--",
                     "sh", "-c", "echo \"$GUARDARENA_OPTIONS\"; echo \"$LD_PRELOAD\""},
                    {"GUARDARENA_OPTIONS=stack_depth=4", "LD_PRELOAD=/other/lib.so"});
  ASSERT_TRUE(r.exited(0)) << r.describe();
  std::string lib = fs::canonical(kLibrary).string();
  EXPECT_EQ(r.out,
            "stack_depth=4:mode=full:protect_below=1:log_path=/tmp/"
            "ga:report_format=json:quarantine_slots=5:"
            "backend=mprotect:quarantine_bytes=1M:sample_rate=1000\n" +
                lib + " /other/lib.so\n");
}

TEST(LauncherTest, SampleModeKeepsAnExplicitRate) {
  Result r =
      launch({"--mode=sample", "--sample-rate=7", "sh", "-c", "echo \"$GUARDARENA_OPTIONS\""});
  ASSERT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "mode=full:sample_rate=7\n");
}

TEST(LauncherTest, BadValueIsRejectedBeforeRunning) {
  Result r = launch({"--sample-rate=often", "--", "sh", "-c", "echo ran"});
  EXPECT_TRUE(r.exited(1)) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "^guardarena: option 'sample_rate': bad value 'often'"))
      << r.describe();
  Result unknown = launch({"--no-such-flag", "--", "true"});
  EXPECT_TRUE(unknown.exited(2)) << unknown.describe();
  EXPECT_TRUE(contains(unknown.err, "unknown option '--no-such-flag'")) << unknown.describe();
}

TEST(LauncherTest, FindsTheLibraryInAnInstallTree) {
  TempDir dir;
  fs::create_directories(dir.path() + "/bin");
  fs::create_directories(dir.path() + "/lib");
  fs::copy_file(kLauncher, dir.path() + "/bin/guardarena");
  fs::copy_file(kLibrary, dir.path() + "/lib/libguardarena.so");
  Result r = run({.argv = {dir.path() + "/bin/guardarena", "sh", "-c", "echo \"$LD_PRELOAD\""},
                  .preload = false});
  ASSERT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, fs::canonical(dir.path() + "/lib/libguardarena.so").string() + "\n");
}

}  // namespace
