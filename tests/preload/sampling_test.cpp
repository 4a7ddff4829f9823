// Guarding a sample of the allocations or a size band, and running out of
// guard pages (the mprotect backend's VMA budget): the blocks each source
// serves go back to it, and programs run on.
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

class SamplingTest : public BothBackends {};
INSTANTIATE_TEST_SUITE_P(Backends, SamplingTest, ::testing::ValuesIn(kBackends), backend_name);

// ---- sampling and the size band ---------------------------------------------

TEST_P(SamplingTest, CatchesOneOverflowAmongManyWithinABoundedNumberOfRuns) {
  Result native = run({.argv = {program("sampled_overflow"), "ok"}, .preload = false});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  // A 1-in-10 chance per run: 300 runs all missing it has probability
  // 0.9^300 < 1e-13.
  constexpr int kMaxRuns = 300;
  int runs = 0;
  bool caught = false;
  while (!caught && runs < kMaxRuns) {
    ++runs;
    Result r = run({.argv = {program("sampled_overflow")}, .options = opts("sample_rate=10")});
    if (r.signaled(SIGSEGV)) {
      caught = true;
      EXPECT_TRUE(contains(r.err, "ERROR: guardarena: heap-buffer-overflow")) << r.describe();
      EXPECT_TRUE(contains(r.err, "0 bytes after the 64-byte block")) << r.describe();
    } else {
      // Missed: the overflow stayed inside glibc's chunk and nothing changed.
      ASSERT_TRUE(r.exited(0)) << "run " << runs << ": " << r.describe();
      ASSERT_EQ(r.out, native.out);
      ASSERT_EQ(r.err, "");
    }
  }
  EXPECT_TRUE(caught) << "not caught in " << runs << " runs";
  RecordProperty("runs_until_caught", runs);
}

TEST_P(SamplingTest, CorrectProgramsPrintTheSameAtSampleRate10) {
  expect_same_output({program("clean_c_workload")}, opts("sample_rate=10"));
  expect_same_output({program("clean_cxx_workload")}, opts("sample_rate=10"));
  expect_same_output({program("bootstrap_free")}, opts("sample_rate=10"));
}

TEST_P(SamplingTest, SplitsAllocationsBetweenTheArenaAndGlibc) {
  Result r =
      run({.argv = {program("clean_c_workload")}, .options = opts("sample_rate=10:print_stats=1")});
  ASSERT_TRUE(r.exited(0)) << r.describe();
  EXPECT_TRUE(contains(r.err, "guarded allocations [1-9][0-9]*, unguarded by sampling [1-9]"))
      << r.describe();
}

TEST_P(SamplingTest, UsableSizeAndReallocOfGlibcBlocks) {
  // Sampled-out blocks answer malloc_usable_size through glibc's (found
  // with dlsym from inside malloc_usable_size) and are moved under guard by
  // realloc when the sampler picks the new size.
  Result r = run({.argv = {program("usable_size")}, .options = opts("sample_rate=2")});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.err, "");
  expect_same_output({program("clean_c_workload")}, opts("sample_rate=2"));
}

// sampled_mix runs every entry point of the sampled-out fast path (malloc,
// calloc, realloc, operator new and the frees going straight to glibc) on
// four threads that hand blocks to each other.
TEST_P(SamplingTest, MixedEntryPointsOnThreadsPrintTheSame) {
  for (const char* options :
       {"sample_rate=3", "sample_rate=1000", "sample_rate=1000000000", "sample_rate=7:mode=fast"}) {
    SCOPED_TRACE(options);
    expect_same_output({program("sampled_mix"), "ok"}, opts(options));
  }
}

TEST_P(SamplingTest, OverflowIsCaughtFromEveryFastPathEntryPoint) {
  struct Case {
    const char* how;
    const char* allocated_with;
  };
  for (Case c : {Case{"malloc", "malloc"}, Case{"calloc", "malloc"}, Case{"realloc", "malloc"},
                 Case{"new", "operator new"}, Case{"new[]", "operator new \\[\\]"}}) {
    SCOPED_TRACE(c.how);
    // A new thread overflows 64-byte blocks one after another: its countdown
    // reaches a guarded block within 2 * 20 - 1 of them.
    Result r = run({.argv = {program("sampled_mix"), c.how}, .options = opts("sample_rate=20")});
    EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
    EXPECT_EQ(r.out, "mix: 4 threads x 20000 operations, 0 failures\n");
    EXPECT_TRUE(contains(r.err,
                         "ERROR: guardarena: heap-buffer-overflow on address 0x[0-9a-f]+ "
                         "\\(thread T[0-9]+\\)"))
        << r.describe();
    EXPECT_TRUE(contains(r.err, "WRITE at ")) << r.describe();
    EXPECT_TRUE(contains(r.err, std::string("0 bytes after the 64-byte block .*allocated with ") +
                                    c.allocated_with + "\\)"))
        << r.describe();
    EXPECT_TRUE(contains(r.err, "overflower")) << r.describe();
  }
}

TEST(SizeBandTest, BlocksBelowMinSizeAreNotGuarded) {
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "min_size=65"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
}

TEST(SizeBandTest, BlocksAboveMaxSizeAreNotGuarded) {
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "max_size=63"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
}

TEST(SizeBandTest, BlocksInsideTheBandAreGuarded) {
  Result r =
      run({.argv = {program("overflow_write_malloc")}, .options = "min_size=64:max_size=64"});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
}

TEST(SizeBandTest, SampleAfterSkipsTheFirstAllocations) {
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "sample_after=1000000"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  Result guarded = run({.argv = {program("overflow_write_malloc")}, .options = "sample_after=1"});
  EXPECT_TRUE(guarded.signaled(SIGSEGV)) << guarded.describe();
}

// ---- guard-page exhaustion (mprotect backend) -------------------------------

// vma_headroom above vm.max_map_count leaves no budget at all.
std::string no_vma_budget() {
  return "backend=mprotect:vma_headroom=" + std::to_string(guardarena::os::max_map_count() + 1000);
}

TEST(ExhaustionTest, FallsBackToGlibcWarningOnceAndCounting) {
  Result r = run(
      {.argv = {program("many_blocks"), "3000"}, .options = no_vma_budget() + ":print_stats=1"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "allocated 3000 failed 0 first errno none\n");
  EXPECT_EQ(count_lines_with(r.err, "guardarena: warning: "), 1u) << r.describe();
  EXPECT_TRUE(contains(r.err, "vm.max_map_count")) << r.describe();
  EXPECT_TRUE(contains(r.err, "fallback allocations \\(guard pages exhausted\\) [1-9]"))
      << r.describe();
}

TEST(ExhaustionTest, AddressSpaceLimitKeepsTheProgramRunningUnguarded) {
  // ulimit -v too small for even two 64 MiB chunks: fallback runs the
  // program on glibc with a warning; fail stops it with one line, status 1.
  std::string cmd = "ulimit -v 150000 && exec " + program("clean_c_workload");
  Result plain = run({.argv = {"/bin/sh", "-c", cmd}, .preload = false});
  Result fallback = run({.argv = {"/bin/sh", "-c", cmd}});
  EXPECT_TRUE(fallback.exited(0)) << fallback.describe();
  EXPECT_EQ(fallback.out, plain.out);
  EXPECT_TRUE(contains(fallback.err, "running this process unguarded on glibc"))
      << fallback.describe();
  Result fail = run({.argv = {"/bin/sh", "-c", cmd}, .options = "on_exhaustion=fail"});
  EXPECT_TRUE(fail.exited(1)) << fail.describe();
  EXPECT_TRUE(contains(fail.err, "cannot reserve address space")) << fail.describe();
}

// A process left unguarded must not pay for what only guarded blocks use
// (the stack depot, per-thread stack caches): under ulimit -v every MiB it
// maps is one the program cannot have.
TEST(ExhaustionTest, UnguardedProcessMapsNoStackDepot) {
  auto vm_size_kib = [](const Result& r) -> long {
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex("VmSize:\\s+([0-9]+) kB"))) return -1;
    return std::stol(m[1].str());
  };
  std::string cmd = "ulimit -v 150000 && exec grep VmSize /proc/self/status";
  Result plain = run({.argv = {"/bin/sh", "-c", cmd}, .preload = false});
  Result fallback = run({.argv = {"/bin/sh", "-c", cmd}});
  ASSERT_TRUE(fallback.exited(0)) << fallback.describe();
  ASSERT_TRUE(contains(fallback.err, "running this process unguarded on glibc"))
      << fallback.describe();
  long plain_kib = vm_size_kib(plain);
  long fallback_kib = vm_size_kib(fallback);
  ASSERT_GT(plain_kib, 0) << plain.describe();
  ASSERT_GT(fallback_kib, 0) << fallback.describe();
  // The library's own code, libstdc++ and a few small tables: a few MiB,
  // not the depot's tens.
  EXPECT_LT(fallback_kib - plain_kib, 12 * 1024) << plain.out << fallback.out;
}

TEST(ExhaustionTest, FailPolicyReturnsNullWithEnomem) {
  Result r = run({.argv = {program("many_blocks"), "100"},
                  .options = no_vma_budget() + ":on_exhaustion=fail"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "allocated 0 failed 100 first errno ENOMEM\n");
}

// Guarded blocks turned into glibc ones (fallback) are tracked by the arena:
// while any is live, free() must not hand glibc pointers straight to glibc,
// or the arena's count of live fallback blocks would never come down.
TEST(ExhaustionTest, FallbackAndSampledOutBlocksEachGoBackTheirOwnWay) {
  Result r = run(
      {.argv = {program("sampled_mix"), "stats"}, .options = no_vma_budget() + ":sample_rate=3"});
  ASSERT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "mix: 4 threads x 20000 operations, 0 failures\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.err, m,
      std::regex("fallback allocations \\(guard pages exhausted\\) ([0-9]+), still live ([0-9]+)")))
      << r.describe();
  EXPECT_GT(std::stoull(m[1].str()), 10000u) << r.describe();
  // The program frees all it allocated; libc and libstdc++ keep a few.
  EXPECT_LT(std::stoull(m[2].str()), 50u) << r.describe();
}

TEST(ExhaustionTest, RealProgramRunsOnPastTheBudget) {
  // Perl keeping ~40K blocks live exceeds the default budget (~32K).
  if (!have("perl")) GTEST_SKIP() << "perl is not installed";
  std::vector<std::string> argv = {
      "perl", "-e", "my %h; $h{$_} = $_ x 3 for 1 .. 20000; print scalar(keys %h), qq(\\n)"};
  expect_same_output(argv, "backend=mprotect");
}

}  // namespace
