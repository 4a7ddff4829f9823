// One tiny program per bug, on both guard backends: each must die at the
// buggy statement with the right report, and its correct version must print
// what it prints without the shim.
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

// ---- one program per bug ---------------------------------------------------

struct BugCase {
  const char* label;    // test name
  const char* program;  // in programs/
  const char* options;  // extra GUARDARENA_OPTIONS
  int signal;           // how the buggy run dies; 0: it exits with exit_code
  int exit_code;
  bool faults;  // dies at the statement itself (guard page), not at a later free
  std::vector<std::string> stderr_patterns;
};

// gtest prints parameters in failure messages and test lists.
void PrintTo(const BugCase& c, std::ostream* os) {
  *os << c.label;
}

std::vector<BugCase> bug_cases() {
  using V = std::vector<std::string>;
  std::string ovf = std::string(kError) + "heap-buffer-overflow";
  std::string unf = std::string(kError) + "heap-buffer-underflow";
  std::string uaf = std::string(kError) + "heap-use-after-free";
  std::string segv = std::string(kError) + "SEGV";
  return {
      {"overflow_write_malloc", "overflow_write_malloc", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "is located 0 bytes after the 64-byte block", "allocated with malloc"}},
      {"overflow_read_malloc", "overflow_read_malloc", "", SIGSEGV, 0, true,
       V{ovf, "READ at ", "0 bytes after the 64-byte block"}},
      {"underflow_write", "underflow_write", "protect_below=1", SIGSEGV, 0, true,
       V{unf, "WRITE at ", "1 bytes before the 64-byte block"}},
      {"underflow_read", "underflow_read", "protect_below=1", SIGSEGV, 0, true,
       V{unf, "READ at ", "1 bytes before the 64-byte block"}},
      {"overflow_calloc", "overflow_calloc", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "0 bytes after the 80-byte block"}},
      {"overflow_realloc", "overflow_realloc", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "0 bytes after the 48-byte block"}},
      {"overflow_memalign", "overflow_memalign", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "the 128-byte block .* \\(alignment 64, allocated with malloc\\)"}},
      {"overflow_aligned_alloc", "overflow_aligned_alloc", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "the 96-byte block .* \\(alignment 32"}},
      {"overflow_posix_memalign", "overflow_posix_memalign", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "the 192-byte block .* \\(alignment 64"}},
      {"overflow_valloc", "overflow_valloc", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "the 8192-byte block .* \\(alignment 4096"}},
      {"overflow_new", "overflow_new", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "0 bytes after the 48-byte block .*allocated with operator new\\)"}},
      {"overflow_new_array", "overflow_new_array", "", SIGSEGV, 0, true,
       V{ovf, "WRITE at ",
         "0 bytes after the 64-byte block .*allocated with operator new \\[\\]\\)"}},
      {"use_after_free_read", "use_after_free_read", "", SIGSEGV, 0, true,
       V{uaf, "READ at ", "0 bytes inside the freed 32-byte block"}},
      {"use_after_free_write", "use_after_free_write", "", SIGSEGV, 0, true,
       V{uaf, "WRITE at ", "5 bytes inside the freed 32-byte block"}},
      {"use_after_realloc", "use_after_realloc", "", SIGSEGV, 0, true,
       V{uaf, "WRITE at ", "0 bytes inside the freed 64-byte block"}},
      {"use_after_delete", "use_after_delete", "", SIGSEGV, 0, true,
       V{uaf, "READ at ", "inside the freed 16-byte block .*allocated with operator new\\)"}},
      {"double_free", "double_free", "", SIGABRT, 0, true,
       V{std::string(kError) + "double-free",
         "attempting double-free of 0x[0-9a-f]+ \\(64-byte block\\) in free"}},
      {"invalid_free_interior", "invalid_free_interior", "", SIGABRT, 0, true,
       V{std::string(kError) + "invalid-free",
         "attempting free on address .* 8 bytes from the start of the live 64-byte block"}},
      {"invalid_free_foreign", "invalid_free_foreign", "", SIGABRT, 0, true,
       V{std::string(kError) + "invalid-free",
         "attempting free on address 0x[0-9a-f]+, which was not returned by this allocator"}},
      {"mismatch_free_new", "mismatch_free_new", "", SIGABRT, 0, true,
       V{std::string(kError) + "alloc-dealloc-mismatch", "\\(operator new vs free\\)"}},
      {"mismatch_delete_new_array", "mismatch_delete_new_array", "", SIGABRT, 0, true,
       V{std::string(kError) + "alloc-dealloc-mismatch",
         "\\(operator new \\[\\] vs operator delete\\)"}},
      {"mismatch_delete_array_malloc", "mismatch_delete_array_malloc", "", SIGABRT, 0, true,
       V{std::string(kError) + "alloc-dealloc-mismatch", "\\(malloc vs operator delete \\[\\]\\)"}},
      {"mismatch_sized_delete", "mismatch_sized_delete", "", SIGABRT, 0, true,
       V{std::string(kError) + "dealloc-size-mismatch",
         "operator delete called with size 48 for the 32-byte block"}},
      {"overflow_thread", "overflow_thread", "", SIGSEGV, 0, true,
       V{ovf + " on address 0x[0-9a-f]+ \\(thread T[0-9]+\\)", "WRITE at ",
         "0 bytes after the 64-byte block"}},
      {"overflow_fork_child", "overflow_fork_child", "", 0, 100 + SIGSEGV, true,
       V{ovf, "WRITE at ", "0 bytes after the 64-byte block"}},
      // 13 bytes round up to 16: the byte past the end is slack, checked at free.
      {"slack_overflow", "slack_overflow", "", SIGABRT, 0, false,
       V{ovf, "1 bytes written past the end of the 13-byte block"}},
      {"slack_overflow_alignment_1", "slack_overflow", "alignment=1", SIGSEGV, 0, true,
       V{ovf, "WRITE at ", "0 bytes after the 13-byte block .*\\(alignment 1,"}},
      // Faults outside every arena.
      {"wild_write", "wild_write", "", SIGSEGV, 0, true,
       V{segv + " on unknown address 0x0*1234 \\(thread T[0-9]+\\)",
         "\nWRITE memory access at 0x0*1234; hint: address is in the lowest 64 KiB, never "
         "mapped: a null pointer plus an offset\\?\n",
         "\nSUMMARY: guardarena: SEGV in main "}},
      {"wild_read", "wild_read", "", SIGSEGV, 0, true,
       V{segv + " on unknown address 0x[0-9a-f]+ ", "\nREAD memory access at 0x[0-9a-f]+\n"}},
      {"null_deref", "null_deref", "", SIGSEGV, 0, true,
       V{segv + " on unknown address 0x0+ ",
         "\nREAD memory access at 0x0+; hint: address points to the zero page\n"}},
      {"stack_overflow_main", "stack_overflow_main", "", SIGSEGV, 0, true,
       V{std::string(kError) + "stack-overflow on address 0x[0-9a-f]+ ",
         "\nWRITE memory access at 0x[0-9a-f]+; hint: address is in the guard region below "
         "the thread's stack\n",
         "\nSUMMARY: guardarena: stack-overflow in depth "}},
      {"stack_overflow_thread", "stack_overflow_thread", "", SIGSEGV, 0, true,
       V{std::string(kError) + "stack-overflow on address 0x[0-9a-f]+ ",
         "\nWRITE memory access at 0x[0-9a-f]+; hint: address is in the guard region below "
         "the thread's stack\n",
         "\nSUMMARY: guardarena: stack-overflow in depth "}},
  };
}

class BugTest : public ::testing::TestWithParam<std::tuple<BugCase, BackendParam>> {};

TEST_P(BugTest, DiesAtTheBuggyStatementWithAReport) {
  const auto& [c, backend] = GetParam();
  SKIP_IF_UNSUPPORTED(backend);
  Result r = run({.argv = {program(c.program)}, .options = with_backend(backend, c.options)});
  if (c.signal != 0) {
    EXPECT_TRUE(r.signaled(c.signal)) << "expected signal " << c.signal << "; " << r.describe();
  } else {
    EXPECT_TRUE(r.exited(c.exit_code)) << "expected exit " << c.exit_code << "; " << r.describe();
  }
  EXPECT_NE(r.out.find("reached the statement"), std::string::npos) << r.describe();
  if (c.faults) {
    EXPECT_EQ(r.out.find("after the statement"), std::string::npos) << r.describe();
  }
  for (const std::string& pattern : c.stderr_patterns) {
    EXPECT_TRUE(contains(r.err, pattern)) << "stderr lacks /" << pattern << "/\n" << r.describe();
  }
  EXPECT_EQ(count_lines_with(r.err, kError), 1u) << "one report per bug\n" << r.describe();
  // Every report starts at the program: frame #0 of the first stack (the
  // access, or the call that freed) is the program's, never guardarena's.
  EXPECT_TRUE(contains(r.err, "here:\n +#0 0x[0-9a-f]+ .*/" + std::string(c.program) + "\\+0x"))
      << "frame #0 of the first stack is not in the program\n"
      << r.describe();
  EXPECT_FALSE(contains(r.err, "#[0-9]+ 0x[0-9a-f]+ in [^\n]*guardarena::"))
      << "a guardarena frame in a stack\n"
      << r.describe();
  // The report names the file and line of the bug (the programs are built
  // with -g and a symbolizer is part of the test environment).
  auto [file, line] = bug_line(c.program);
  ASSERT_FALSE(file.empty()) << "no BUG marker in " << c.program;
  const std::string file_re = std::regex_replace(file, std::regex("\\."), "\\.");
  // As ASan's: SUMMARY names frame #0 as "function file:line".
  EXPECT_TRUE(
      contains(r.err, "\nSUMMARY: guardarena: [^\n]* in [^ \n]+ [^\n]*/" + file_re + ":[0-9]+\n"))
      << "SUMMARY does not name the program's frame\n"
      << r.describe();
  if (c.faults) {
    EXPECT_NE(r.err.find(file + ":" + std::to_string(line)), std::string::npos)
        << "the report does not name " << file << ":" << line << "\n"
        << r.describe();
  }
}

TEST_P(BugTest, CorrectVersionPrintsTheSameAsWithoutTheShim) {
  const auto& [c, backend] = GetParam();
  SKIP_IF_UNSUPPORTED(backend);
  Result native = run({.argv = {program(c.program), "ok"}, .preload = false});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim =
      run({.argv = {program(c.program), "ok"}, .options = with_backend(backend, c.options)});
  EXPECT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_EQ(shim.out, native.out);
  EXPECT_EQ(shim.err, native.err);
}

std::string bug_test_name(const ::testing::TestParamInfo<BugTest::ParamType>& info) {
  return std::string(std::get<0>(info.param).label) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Programs, BugTest,
                         ::testing::Combine(::testing::ValuesIn(bug_cases()),
                                            ::testing::ValuesIn(bug_backends())),
                         bug_test_name);

}  // namespace
