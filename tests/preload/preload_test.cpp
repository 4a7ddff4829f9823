// Integration tests of libguardarena.so and the guardarena launcher: every
// program runs in a child process (fork + execve) with LD_PRELOAD and
// GUARDARENA_OPTIONS set, and the test checks how it ended (signal or exit
// status) and what it wrote. Bug programs must die at the buggy statement with
// the right report; their correct counterparts and real programs must print
// exactly what they print without the shim. The suites that exercise
// allocation paths run on both guard backends (BugTest, BackendTest,
// RealProgramTest, SamplingTest, LeakTest, ForkTest, SignalTest, DlopenTest);
// on the default backend only (guard where the kernel has it): OptionsTest,
// JsonReportTest, SizeBandTest, FastModeTest and StackTest (their loops add
// backend=mprotect where it matters), and the suites that do not depend on
// the backend: ExportsTest, LauncherTest, OldKernelTest (the kernel without
// guard markers chooses it), ExhaustionTest (the mprotect budget by design).
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
#include "support/kernel_facts.h"
#include "support/old_kernel.h"
#include "test_support.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

const std::string kLibrary = GUARDARENA_PRELOAD_LIB;
const std::string kLauncher = GUARDARENA_LAUNCHER;
const std::string kPrograms = GUARDARENA_PROGRAMS_DIR;
const std::string kProgramSources = GUARDARENA_PROGRAMS_SOURCE_DIR;
const std::string kRealPrograms = GUARDARENA_REAL_PROGRAMS_DIR;

// ---- running a child -------------------------------------------------------

struct Result {
  int status = -1;
  pid_t pid = 0;
  bool timed_out = false;
  std::string out;
  std::string err;

  bool exited(int code) const {
    return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == code;
  }
  bool signaled(int sig) const {
    return !timed_out && WIFSIGNALED(status) && WTERMSIG(status) == sig;
  }
  std::string describe() const {
    std::ostringstream s;
    if (timed_out) {
      s << "timed out";
    } else if (WIFEXITED(status)) {
      s << "exited with " << WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      s << "killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
    }
    s << "\n--- stdout ---\n" << out.substr(0, 4000) << "\n--- stderr ---\n" << err.substr(0, 8000);
    return s.str();
  }
};

struct Run {
  std::vector<std::string> argv;
  bool preload = true;  // LD_PRELOAD=libguardarena.so and GUARDARENA_OPTIONS=options
  std::string options;
  std::vector<std::string> env;  // NAME=VALUE, set last
  std::string cwd;
  int timeout_seconds = 120;
  bool without_guard_markers = false;  // simulate a kernel before 6.13 (support/old_kernel.h)
};

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// Runs r.argv[0] (searched in PATH) with the environment of this process,
// minus LD_PRELOAD and GUARDARENA_OPTIONS, plus what `r` asks for; stdin is
// /dev/null. Kills the child when the timeout expires.
Result run(const Run& r) {
  std::vector<std::string> env;
  std::vector<std::string> override_names;
  for (const std::string& e : r.env) override_names.push_back(e.substr(0, e.find('=') + 1));
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (starts_with(s, "LD_PRELOAD=") || starts_with(s, "GUARDARENA_OPTIONS=")) continue;
    bool overridden = false;
    for (const std::string& n : override_names) overridden |= starts_with(s, n);
    if (!overridden) env.push_back(s);
  }
  if (r.preload) {
    env.push_back("LD_PRELOAD=" + kLibrary);
    env.push_back("GUARDARENA_OPTIONS=" + r.options);
  }
  for (const std::string& e : r.env) env.push_back(e);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = r.argv;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) std::abort();
  Result res;
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (!r.cwd.empty() && ::chdir(r.cwd.c_str()) != 0) ::_exit(126);
    if (r.without_guard_markers && !guardarena::testing::hide_guard_markers(nullptr)) ::_exit(125);
    ::execvpe(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  res.pid = pid;
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(r.timeout_seconds);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (!res.timed_out) ::kill(pid, SIGKILL);
      res.timed_out = true;
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      left = std::chrono::milliseconds(5000);
    }
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[65536];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  ::waitpid(pid, &res.status, 0);
  return res;
}

std::string program(const std::string& name) {
  return kPrograms + "/" + name;
}

// A fresh directory, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "guardarena-preload-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool contains(const std::string& haystack, const std::string& regex) {
  return std::regex_search(haystack, std::regex(regex));
}

std::size_t count_lines_with(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// stderr without guardarena's one-time warning that guard pages ran out
// (the mprotect backend's VMA budget): the only line the shim may add to a
// correct program's output, and at most once.
std::string without_exhaustion_warning(const std::string& err) {
  std::istringstream in(err);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (!starts_with(line, "guardarena: warning: ")) kept += line + "\n";
  }
  return kept;
}

// ---- backends --------------------------------------------------------------

struct BackendParam {
  const char* name;
  const char* options;
};
const BackendParam kBackends[] = {{"guard", "backend=guard"}, {"mprotect", "backend=mprotect"}};

std::string with_backend(const BackendParam& b, const std::string& extra = "") {
  if (b.options[0] == '\0') return extra;
  return extra.empty() ? std::string(b.options) : std::string(b.options) + ":" + extra;
}

// The bug programs run on both backends; where guard markers are accepted
// and not enforced (an emulator such as qemu-user), with the default options
// instead of backend=guard: backend=auto must then fall back by itself, and
// every report must come out as it does on a kernel.
std::vector<BackendParam> bug_backends() {
  if (guardarena::testing::guard_markers().ignored) return {{"auto", ""}, kBackends[1]};
  return {kBackends[0], kBackends[1]};
}

#define SKIP_IF_UNSUPPORTED(backend)                                                \
  do {                                                                              \
    if (std::string((backend).name) == "guard") GUARDARENA_REQUIRE_GUARD_MARKERS(); \
  } while (0)

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
void PrintTo(const BackendParam& b, std::ostream* os) {
  *os << b.name;
}

const char kError[] = "ERROR: guardarena: ";

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

// Line of the statement marked BUG in the program's source, and the file name.
std::pair<std::string, int> bug_line(const std::string& name) {
  for (const char* ext : {".c", ".cpp"}) {
    std::ifstream in(kProgramSources + "/" + name + ext);
    if (!in) continue;
    int n = 0;
    for (std::string line; std::getline(in, line);) {
      ++n;
      if (line.find("BUG */") != std::string::npos || line.find("// BUG") != std::string::npos) {
        return {name + ext, n};
      }
    }
  }
  return {"", 0};
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

// ---- correct programs and the API contract, per backend --------------------

class BackendTest : public ::testing::TestWithParam<BackendParam> {};

std::string backend_name(const ::testing::TestParamInfo<BackendParam>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::ValuesIn(kBackends), backend_name);

void expect_same_output(const std::vector<std::string>& argv, const std::string& options,
                        const std::vector<std::string>& env = {}) {
  Result native = run({.argv = argv, .preload = false, .env = env});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim = run({.argv = argv, .options = options, .env = env});
  EXPECT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_EQ(shim.out, native.out);
  EXPECT_EQ(without_exhaustion_warning(shim.err), native.err);
  EXPECT_LE(count_lines_with(shim.err, "guardarena: warning: "), 1u);
}

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

bool have(const std::string& tool) {
  return run({.argv = {"sh", "-c", "command -v " + tool}, .preload = false}).exited(0);
}

#define REQUIRE_TOOL(tool)                                     \
  do {                                                         \
    if (!have(tool)) GTEST_SKIP() << tool " is not installed"; \
  } while (0)

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

// ---- suites that exercise allocation paths, on both backends --------------------

// Sampling, leaks, fork, signals and dlopen: each run's options start with
// the backend under test.
class BothBackends : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override { SKIP_IF_UNSUPPORTED(GetParam()); }
  std::string opts(const std::string& extra = "") const { return with_backend(GetParam(), extra); }
};
class SamplingTest : public BothBackends {};
class LeakTest : public BothBackends {};
class ForkTest : public BothBackends {};
class SignalTest : public BothBackends {};
class DlopenTest : public BothBackends {};
class HeapCheckTest : public BothBackends {};
INSTANTIATE_TEST_SUITE_P(Backends, SamplingTest, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, LeakTest, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, ForkTest, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, SignalTest, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, DlopenTest, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, HeapCheckTest, ::testing::ValuesIn(kBackends), backend_name);

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

// ---- options ------------------------------------------------------------------

TEST(OptionsTest, BadValueStopsTheProgramWithOneLineAndStatus1) {
  Result r = run({.argv = {program("clean_c_workload")}, .options = "quarantine_bytes=lots"});
  EXPECT_TRUE(r.exited(1)) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "guardarena: option 'quarantine_bytes': bad value 'lots' (accepted: size)\n");
}

TEST(OptionsTest, UnknownOptionStopsTheProgram) {
  Result r = run({.argv = {"true"}, .options = "no_such_option=1"});
  EXPECT_TRUE(r.exited(1)) << r.describe();
  EXPECT_TRUE(contains(r.err, "^guardarena: option 'no_such_option': unknown option[^\n]*\n$"))
      << r.describe();
}

TEST(OptionsTest, HelpPrintsEveryOption) {
  Result r = run({.argv = {program("clean_c_workload")}, .options = "help=1"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "");
  const guardarena::OptionInfo* table = guardarena::option_table();
  for (std::size_t i = 0; i < guardarena::kOptionCount; ++i) {
    EXPECT_NE(r.err.find(std::string("  ") + table[i].name + "="), std::string::npos)
        << table[i].name;
  }
}

TEST(OptionsTest, PrintStatsAtExit) {
  Result r = run({.argv = {program("clean_c_workload")}, .options = "print_stats=1"});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_TRUE(contains(r.err, "^guardarena: statistics \\(pid [0-9]+\\)\n")) << r.describe();
  EXPECT_TRUE(contains(r.err, "guarded allocations [1-9]")) << r.describe();
  EXPECT_TRUE(contains(r.err, "live blocks [0-9]+ \\([0-9]+ bytes\\), peak [1-9]")) << r.describe();
}

// Fast mode takes a shorter path for reused one-page slots once a thread's
// cache is warm: every check must hold there too, with the same report.
TEST(FastModeTest, BugsAfterAWarmUpAreReportedLikeColdOnes) {
  struct Case {
    const char* bug;
    int signal;
    std::vector<std::string> patterns;
  };
  const std::string e = kError;
  for (const Case& c : std::vector<Case>{
           {"double_free",
            SIGABRT,
            {e + "double-free", "attempting double-free of 0x[0-9a-f]+ \\(48-byte block\\)"}},
           {"interior_free",
            SIGABRT,
            {e + "invalid-free", "8 bytes from the start of the live 48-byte block"}},
           {"free_new", SIGABRT, {e + "alloc-dealloc-mismatch", "\\(operator new vs free\\)"}},
           {"sized_delete",
            SIGABRT,
            {e + "dealloc-size-mismatch",
             "operator delete called with size 64 for the 48-byte block"}},
           {"underflow",
            SIGABRT,
            {e + "heap-buffer-underflow", "1 bytes written before the start of the 48-byte"}},
           {"slack",
            SIGABRT,
            {e + "heap-buffer-overflow", "1 bytes written past the end of the 13-byte block"}},
           {"write_after_free",
            SIGABRT,
            {e + "heap-use-after-free", "write after free: byte 5 of the freed 48-byte block"}},
           {"overflow",
            SIGSEGV,
            {e + "heap-buffer-overflow", "WRITE at ", "0 bytes after the 48-byte block"}},
       }) {
    Result r = run({.argv = {program("warm_bugs"), c.bug}, .options = "mode=fast"});
    EXPECT_TRUE(r.signaled(c.signal)) << c.bug << "\n" << r.describe();
    EXPECT_EQ(r.out, "reached the statement\n") << c.bug << "\n" << r.describe();
    for (const std::string& pattern : c.patterns) {
      EXPECT_TRUE(contains(r.err, pattern)) << c.bug << ": stderr lacks /" << pattern << "/\n"
                                            << r.describe();
    }
    EXPECT_EQ(count_lines_with(r.err, kError), 1u) << c.bug << "\n" << r.describe();
  }
  Result ok = run({.argv = {program("warm_bugs"), "ok"}, .options = "mode=fast"});
  EXPECT_TRUE(ok.exited(0)) << ok.describe();
  EXPECT_EQ(ok.out, "reached the statement\nafter the statement\n") << ok.describe();
}

// Line of the comment `marker` in programs/<file>.
int marker_line(const std::string& file, const std::string& marker) {
  std::ifstream in(kProgramSources + "/" + file);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.find(marker) != std::string::npos) return n;
  }
  return 0;
}

// Allocation and free stacks come from a per-thread memo keyed by the entry
// frame: malloc's and free's, called from one function, share that address,
// and must still keep their own stacks.
TEST(StackTest, WarmMallocAndFreeFromOneFunctionKeepTheirOwnStacks) {
  const int alloc_line = marker_line("memo_sites.c", "ALLOC SITE");
  const int free_line = marker_line("memo_sites.c", "FREE SITE");
  ASSERT_GT(alloc_line, 0);
  ASSERT_GT(free_line, 0);
  const std::string frame0 = R"(here:\n +#0 0x[0-9a-f]+ in churn [^\n]*memo_sites\.c:)";
  for (const char* options : {"mode=full", "mode=fast", "mode=full:backend=mprotect"}) {
    Result r = run({.argv = {program("memo_sites")}, .options = options});
    EXPECT_TRUE(r.signaled(std::string(options) == "mode=fast" ? SIGABRT : SIGSEGV))
        << options << "\n"
        << r.describe();
    EXPECT_EQ(count_lines_with(r.err, kError), 1u) << options << "\n" << r.describe();
    EXPECT_TRUE(contains(r.err, "freed by thread T[0-9]+ " + frame0 + std::to_string(free_line)))
        << options << "\n"
        << r.describe();
    EXPECT_TRUE(
        contains(r.err, "allocated by thread T[0-9]+ " + frame0 + std::to_string(alloc_line)))
        << options << "\n"
        << r.describe();
  }
}

// ---- heap check (check_heap_at_exit, guardarena_check_heap) --------------

// The report of a damaged block found by a heap check: its kind, when it was
// found, and the allocation stack naming the program's ALLOC line.
void expect_heap_check_report(const Result& r, const std::string& program_name,
                              const std::string& kind, const std::string& headline) {
  const std::string file = program_name + ".c";
  const int alloc_line = marker_line(file, "ALLOC */");
  ASSERT_GT(alloc_line, 0) << file;
  EXPECT_TRUE(contains(r.err, std::string(kError) + kind + " on address 0x[0-9a-f]+ "))
      << r.describe();
  EXPECT_TRUE(contains(r.err, headline)) << headline << "\n" << r.describe();
  EXPECT_TRUE(
      contains(r.err, "allocated by thread T[0-9]+ here:\n +#0 0x[0-9a-f]+ in main [^\n]*/" +
                          program_name + "\\.c:" + std::to_string(alloc_line) + " "))
      << r.describe();
  EXPECT_TRUE(contains(r.err, "\nSUMMARY: guardarena: " + kind +
                                  " \\([0-9]+-byte block\\) in main "
                                  "[^\n]*/" +
                                  program_name + "\\.c:" + std::to_string(alloc_line) + "\n"))
      << r.describe();
}

TEST_P(HeapCheckTest, UnderWriteIntoABlockLiveAtExitIsReportedAtExit) {
  Result r = run({.argv = {program("heap_underwrite_live")}, .options = opts()});
  EXPECT_TRUE(r.signaled(SIGABRT)) << r.describe();
  EXPECT_EQ(r.out, "reached the statement\nafter the statement\n");
  EXPECT_EQ(count_lines_with(r.err, kError), 1u) << r.describe();
  EXPECT_TRUE(contains(r.err, "\n==[0-9]+==ABORTING\n$")) << r.describe();
  expect_heap_check_report(
      r, "heap_underwrite_live", "heap-buffer-underflow",
      "\n4 bytes written before the start of the 100-byte block at 0x[0-9a-f]+ "
      "\\(slack canary damaged, found at exit; damaged offsets -4 to -1\\)\n");
}

TEST_P(HeapCheckTest, OverWriteInsideTheSlackOfABlockLiveAtExitIsReportedAtExit) {
  Result r = run({.argv = {program("heap_overwrite_live")}, .options = opts()});
  EXPECT_TRUE(r.signaled(SIGABRT)) << r.describe();
  EXPECT_EQ(count_lines_with(r.err, kError), 1u) << r.describe();
  expect_heap_check_report(r, "heap_overwrite_live", "heap-buffer-overflow",
                           "\n2 bytes written past the end of the 13-byte block at 0x[0-9a-f]+ "
                           "\\(slack canary damaged, found at exit; damaged offsets 13 to 14\\)\n");
}

TEST_P(HeapCheckTest, ExitStatusFollowsExitcode) {
  Result r = run({.argv = {program("heap_underwrite_live")}, .options = opts("exitcode=42")});
  EXPECT_TRUE(r.exited(42)) << r.describe();
  EXPECT_EQ(count_lines_with(r.err, kError), 1u) << r.describe();
}

TEST_P(HeapCheckTest, OffLeavesTheDamageUnreported) {
  Result r =
      run({.argv = {program("heap_underwrite_live")}, .options = opts("check_heap_at_exit=0")});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.err, "");
}

TEST_P(HeapCheckTest, FastModeQuarantinedBlockDamageIsReportedAtExit) {
  Result r = run({.argv = {program("quarantine_damage")}, .options = opts("mode=fast")});
  EXPECT_TRUE(r.signaled(SIGABRT)) << r.describe();
  EXPECT_EQ(count_lines_with(r.err, kError), 1u) << r.describe();
  expect_heap_check_report(r, "quarantine_damage", "heap-use-after-free",
                           "\nwrite after free: byte 5 of the freed 32-byte block at 0x[0-9a-f]+ "
                           "changed \\(found at exit\\)\n");
  EXPECT_TRUE(contains(r.err,
                       "freed by thread T[0-9]+ here:\n +#0 0x[0-9a-f]+ in main [^\n]*/"
                       "quarantine_damage\\.c:"))
      << r.describe();
}

TEST_P(HeapCheckTest, CheckHeapMidRunReportsAndLetsTheProgramGoOn) {
  Result r = run({.argv = {program("check_heap_midrun")}, .options = opts("check_heap_at_exit=0")});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.out, "reached the statement\nafter the statement\ncheck found 1\n");
  EXPECT_EQ(count_lines_with(r.err, kError), 1u) << r.describe();
  EXPECT_FALSE(contains(r.err, "ABORTING")) << "the program goes on\n" << r.describe();
  expect_heap_check_report(r, "check_heap_midrun", "heap-buffer-underflow",
                           "\n1 bytes written before the start of the 40-byte block at 0x[0-9a-f]+ "
                           "\\(slack canary damaged, found by guardarena_check_heap\\(\\); "
                           "damaged offsets -1 to -1\\)\n");
}

TEST_P(HeapCheckTest, IntactHeapsPassTheCheckSilently) {
  for (const char* name : {"heap_underwrite_live", "heap_overwrite_live", "check_heap_midrun"}) {
    for (const char* mode : {"mode=full", "mode=fast"}) {
      Result r = run({.argv = {program(name), "ok"}, .options = opts(mode)});
      EXPECT_TRUE(r.exited(0)) << name << " " << mode << "\n" << r.describe();
      EXPECT_EQ(r.err, "") << name << " " << mode;
    }
  }
}

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

TEST_P(LeakTest, LeaksAreListedByAllocationStackLargestFirst) {
  Result r = run({.argv = {program("leaks")}, .options = opts("detect_leaks=1")});
  EXPECT_TRUE(r.exited(23)) << r.describe();
  EXPECT_EQ(r.out, "done\n");
  EXPECT_TRUE(contains(r.err,
                       "ERROR: guardarena: detected memory leaks\n"
                       "\nDirect leak of 192 byte\\(s\\) in 3 object\\(s\\) allocated from:\n"
                       "[\\s\\S]*in make_leak .*leaks.c:[0-9]+[\\s\\S]*"
                       "\nDirect leak of 48 byte\\(s\\) in 1 object\\(s\\) allocated from:\n"
                       "[\\s\\S]*in make_list .*leaks.c:[0-9]+[\\s\\S]*"
                       "\nIndirect leak of 144 byte\\(s\\) in 3 object\\(s\\) allocated from:\n"
                       "[\\s\\S]*in make_list [\\s\\S]*"
                       "SUMMARY: guardarena: 384 byte\\(s\\) leaked in 7 allocation\\(s\\)."))
      << r.describe();
}

TEST_P(LeakTest, ReachableBlocksAreNotLeaks) {
  Result r = run({.argv = {program("leaks"), "ok"}, .options = opts("detect_leaks=1")});
  EXPECT_TRUE(r.exited(0)) << r.describe();
  EXPECT_EQ(r.err.find("leak"), std::string::npos) << r.describe();
  Result cxx = run({.argv = {program("no_leaks_cxx")}, .options = opts("detect_leaks=1")});
  EXPECT_TRUE(cxx.exited(0)) << cxx.describe();
  EXPECT_EQ(cxx.err.find("leak"), std::string::npos) << cxx.describe();
}

// Pointers held in another thread's stack, in glibc memory outside its main
// heap (mmap'ed chunks, thread arenas): roots LeakSanitizer also sees. Before
// they were scanned, each of the three blocks here was reported as leaked.
TEST_P(LeakTest, RootsInOtherThreadsAndGlibcMappingsKeepBlocksAlive) {
  const std::string options = "detect_leaks=1:max_size=4096";
  Result ok = run({.argv = {program("leak_roots")}, .options = opts(options)});
  EXPECT_TRUE(ok.exited(0)) << ok.describe();
  EXPECT_EQ(ok.out, "done\n");
  EXPECT_EQ(ok.err.find("leak"), std::string::npos) << ok.describe();
  // The wider scan still finds a real leak, and only it.
  Result leak = run({.argv = {program("leak_roots"), "leak"}, .options = opts(options)});
  EXPECT_TRUE(leak.exited(23)) << leak.describe();
  EXPECT_TRUE(contains(leak.err,
                       "\nDirect leak of 64 byte\\(s\\) in 1 object\\(s\\) allocated from:\n"
                       "[\\s\\S]*in leak_one .*leak_roots.c:[0-9]+[\\s\\S]*"
                       "SUMMARY: guardarena: 64 byte\\(s\\) leaked in 1 allocation\\(s\\)."))
      << leak.describe();
}

TEST_P(LeakTest, ExitcodeAppliesToLeaks) {
  Result r = run({.argv = {program("leaks")}, .options = opts("detect_leaks=1:exitcode=7")});
  EXPECT_TRUE(r.exited(7)) << r.describe();
}

TEST_P(LeakTest, ReportSurvivesAProgramThatClosesStderr) {
  // coreutils close stderr at exit; the report still reaches the terminal.
  Result r = run({.argv = {program("leaks"), "close-stderr"}, .options = opts("detect_leaks=1")});
  EXPECT_TRUE(r.exited(23)) << r.describe();
  EXPECT_TRUE(contains(r.err, "SUMMARY: guardarena: 384 byte")) << r.describe();
}

TEST(OptionsTest, LogPathWritesTheReportToAFile) {
  TempDir dir;
  std::string prefix = dir.path() + "/report";
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "log_path=" + prefix});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  EXPECT_EQ(r.err.find("guardarena"), std::string::npos) << r.describe();
  std::string report = read_file(prefix + "." + std::to_string(r.pid));
  EXPECT_TRUE(contains(report, "ERROR: guardarena: heap-buffer-overflow")) << report;
}

TEST(OptionsTest, JsonReports) {
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "report_format=json"});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  EXPECT_TRUE(contains(
      r.err,
      "^\\{\"tool\":\"guardarena\",.*\"kind\":\"heap-buffer-overflow\".*\"access\":\"WRITE\""))
      << r.describe();
}

// Reads a report log line by line with Python's json module: every line
// must be one JSON object from guardarena, with well-formed stacks; prints
// each report's kind.
const char kParseJsonLog[] = R"(import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    r = json.loads(line)
    assert isinstance(r, dict) and r["tool"] == "guardarena" and isinstance(r["pid"], int), (n, line)
    for name, frames in r.get("stacks", {}).items():
        assert isinstance(frames, list), (n, name)
        for f in frames:
            assert {"frame", "pc", "function", "location", "module", "offset"} <= f.keys(), (n, f)
    print(r["kind"])
)";

// report_format=json: every report of every kind (faults, free-time
// checks, leaks at exit) is JSON that a real parser accepts.
TEST(JsonReportTest, EveryKindOfReportParsesAsJson) {
  REQUIRE_TOOL("python3");
  struct Case {
    std::vector<std::string> argv;
    const char* options;
    const char* kinds;  // one per line, in order
  };
  const std::vector<Case> cases = {
      {{program("overflow_write_malloc")}, "", "heap-buffer-overflow\n"},
      {{program("underflow_write")}, "protect_below=1", "heap-buffer-underflow\n"},
      {{program("use_after_free_read")}, "", "heap-use-after-free\n"},
      {{program("double_free")}, "", "double-free\n"},
      {{program("invalid_free_interior")}, "", "invalid-free\n"},
      {{program("mismatch_free_new")}, "", "alloc-dealloc-mismatch\n"},
      {{program("mismatch_sized_delete")}, "", "dealloc-size-mismatch\n"},
      {{program("slack_overflow")}, "", "heap-buffer-overflow\n"},
      {{program("warm_bugs"), "write_after_free"}, "mode=fast", "heap-use-after-free\n"},
      {{program("wild_write")}, "", "SEGV\n"},
      {{program("stack_overflow_thread")}, "", "stack-overflow\n"},
      {{program("leaks")},
       "detect_leaks=1",
       "memory-leak\nmemory-leak\nmemory-leak\nleak-summary\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.argv.back());
    TempDir dir;
    std::string options = "report_format=json:log_path=" + dir.path() + "/report";
    if (c.options[0] != '\0') options += std::string(":") + c.options;
    Result r = run({.argv = c.argv, .options = options});
    EXPECT_FALSE(r.exited(0)) << r.describe();
    std::string log = dir.path() + "/report." + std::to_string(r.pid);
    ASSERT_TRUE(fs::exists(log)) << r.describe();
    Result parsed = run({.argv = {"python3", "-c", kParseJsonLog, log}, .preload = false});
    EXPECT_TRUE(parsed.exited(0)) << parsed.describe() << "\n--- log ---\n" << read_file(log);
    EXPECT_EQ(parsed.out, c.kinds) << read_file(log);
  }
}

TEST(OptionsTest, ExitcodeReplacesTheSignal) {
  Result fault = run({.argv = {program("overflow_write_malloc")}, .options = "exitcode=42"});
  EXPECT_TRUE(fault.exited(42)) << fault.describe();
  Result free_time = run({.argv = {program("double_free")}, .options = "exitcode=43"});
  EXPECT_TRUE(free_time.exited(43)) << free_time.describe();
}

TEST(OptionsTest, HandleSegvOffLeavesThePlainSignal) {
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "handle_segv=0"});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  EXPECT_EQ(r.err, "");
}

// A fault inside libc (strcpy): frame #0 is libc's, and the SUMMARY line
// names the program's frame that called it, where the bug is.
TEST(ReportTest, SummaryNamesTheProgramsFrameNotTheSystemLibrarys) {
  Result r = run({.argv = {program("overflow_strcpy")}});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  EXPECT_TRUE(contains(r.err, R"(here:\n +#0 0x[0-9a-f]+ in [^\n]*\((/usr)?/lib[^\n]*libc\.so)"))
      << r.describe();
  auto [file, line] = bug_line("overflow_strcpy");
  EXPECT_TRUE(contains(r.err,
                       "\nSUMMARY: guardarena: heap-buffer-overflow \\(16-byte block\\) in copy "
                       "[^\n]*/" +
                           file + ":" + std::to_string(line) + "\n"))
      << r.describe();
}

TEST(OptionsTest, HandleSegvOffLeavesFaultsOutsideTheArenaAlone) {
  for (const char* name : {"wild_write", "stack_overflow_thread"}) {
    Result r = run({.argv = {program(name)}, .options = "handle_segv=0"});
    EXPECT_TRUE(r.signaled(SIGSEGV)) << name << "\n" << r.describe();
    EXPECT_EQ(r.err, "") << name;
  }
}

// A SIGSEGV handler the program installed before guardarena's keeps taking
// the faults outside guardarena's memory, with no report.
TEST(OptionsTest, ProgramsOwnEarlierHandlerTakesFaultsOutsideTheArena) {
  Result native = run({.argv = {program("own_segv_handler")}, .preload = false});
  ASSERT_TRUE(native.exited(3)) << native.describe();
  ASSERT_EQ(native.out, "reached the statement\nown handler ran\n");
  Result r = run({.argv = {program("own_segv_handler")}, .options = ""});
  EXPECT_TRUE(r.exited(3)) << r.describe();
  EXPECT_EQ(r.out, native.out);
  EXPECT_EQ(r.err, "");
}

TEST(OptionsTest, ExitcodeAppliesToFaultsOutsideTheArena) {
  Result r = run({.argv = {program("wild_write")}, .options = "exitcode=42"});
  EXPECT_TRUE(r.exited(42)) << r.describe();
  EXPECT_TRUE(contains(r.err, "ERROR: guardarena: SEGV on unknown address")) << r.describe();
}

// A kernel without guard markers (before 6.13), simulated with seccomp:
// backend=guard stops the program with one line and status 1 rather than
// run it unguarded; backend=auto (the default) runs it on mprotect.
TEST(OldKernelTest, BackendGuardExitsWithStatus1) {
  if (std::string why; !guardarena::testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  Result r = run({.argv = {program("clean_c_workload")},
                  .options = "backend=guard",
                  .without_guard_markers = true});
  EXPECT_TRUE(r.exited(1)) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "backend=guard needs MADV_GUARD_INSTALL \\(Linux 6\\.13\\+\\)"))
      << r.describe();
}

TEST(OldKernelTest, BackendAutoRunsOnMprotectAndStillCatchesOverflows) {
  if (std::string why; !guardarena::testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  Result stats = run({.argv = {program("clean_c_workload")},
                      .options = "print_stats=1",
                      .without_guard_markers = true});
  EXPECT_TRUE(stats.exited(0)) << stats.describe();
  EXPECT_TRUE(contains(stats.err, "backend mprotect")) << stats.describe();
  Result bug = run({.argv = {program("overflow_write_malloc")}, .without_guard_markers = true});
  EXPECT_TRUE(bug.signaled(SIGSEGV)) << bug.describe();
  EXPECT_TRUE(contains(bug.err, "ERROR: guardarena: heap-buffer-overflow")) << bug.describe();
}

TEST(OptionsTest, FastModeCatchesOverflowsToo) {
  Result r = run({.argv = {program("overflow_write_malloc")}, .options = "mode=fast"});
  EXPECT_TRUE(r.signaled(SIGSEGV)) << r.describe();
  expect_same_output({program("clean_c_workload")}, "mode=fast");
}

// ---- the exported surface -------------------------------------------------------

struct Symbol {
  std::string name;
  char type;
};

// Defined dynamic symbols of `path` (nm -D), without their version.
std::vector<Symbol> dynamic_symbols(const std::string& path) {
  std::vector<Symbol> syms;
  std::string cmd = "nm -D --defined-only '" + path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return syms;
  char line[1024];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    std::istringstream in(line);
    std::string addr, type, name;
    if (!(in >> addr >> type >> name)) continue;
    syms.push_back({name.substr(0, name.find('@')), type[0]});
  }
  ::pclose(p);
  return syms;
}

std::string library_of(const void* symbol) {
  Dl_info info{};
  return ::dladdr(symbol, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "";
}

bool is_function(char type) {
  return type == 'T' || type == 'W' || type == 'i';
}

// Heap functions of libc: the malloc family by name. Left out on purpose:
// __libc_* (glibc's own allocator, which the shim calls), the removed hooks
// (variables), and mcheck/mprobe/mtrace (inert in libc.so.6 since 2.34).
const std::regex kLibcHeapFunction(
    "malloc|free|cfree|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|"
    "pvalloc|"
    "malloc_[a-z_0-9]+|mallinfo2?|mallopt");
const std::regex kCxxOperator("_Z(nw|na|dl|da).*");

std::set<std::string> expected_exports() {
  std::set<std::string> want;
  std::string libc = library_of(reinterpret_cast<void*>(&::malloc));
  std::string libstdcxx = library_of(reinterpret_cast<void*>(&std::get_new_handler));
  for (const Symbol& s : dynamic_symbols(libc)) {
    if (is_function(s.type) && std::regex_match(s.name, kLibcHeapFunction)) want.insert(s.name);
  }
  for (const Symbol& s : dynamic_symbols(libstdcxx)) {
    if (is_function(s.type) && std::regex_match(s.name, kCxxOperator)) want.insert(s.name);
  }
  return want;
}

TEST(ExportsTest, EveryAllocationSymbolOfLibcAndLibstdcxxIsExported) {
  std::set<std::string> want = expected_exports();
  ASSERT_GE(want.size(), 20u + 15u) << "could not read the system libraries' symbols";
  std::set<std::string> have;
  for (const Symbol& s : dynamic_symbols(kLibrary)) {
    if (is_function(s.type)) have.insert(s.name);
  }
  for (const std::string& name : want)
    EXPECT_TRUE(have.count(name) != 0) << "not exported: " << name;
  std::size_t operators = 0;
  for (const std::string& name : want) operators += std::regex_match(name, kCxxOperator) ? 1 : 0;
  EXPECT_EQ(operators, 20u);
}

TEST(ExportsTest, NothingElseIsExported) {
  std::set<std::string> want = expected_exports();
  for (const Symbol& s : dynamic_symbols(kLibrary)) {
    if (starts_with(s.name, "guardarena_")) continue;
    // Interposed so that every thread gets an alternate signal stack.
    if (s.name == "pthread_create") continue;
    EXPECT_TRUE(want.count(s.name) != 0)
        << "unexpected export: " << s.name << " (" << s.type << ")";
  }
}

TEST(ExportsTest, NoGeneralDynamicTls) {
  // __tls_get_addr can call malloc for dlopen'ed modules: a malloc
  // replacement must use initial-exec TLS only.
  std::string cmd = "nm -D --undefined-only '" + kLibrary + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string all;
  char line[512];
  while (std::fgets(line, sizeof line, p) != nullptr) all += line;
  ::pclose(p);
  EXPECT_FALSE(all.empty());
  EXPECT_EQ(all.find("__tls_get_addr"), std::string::npos) << all;
}

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
