// The harness of the preload integration tests: every program runs in a
// child process (fork + execve) with LD_PRELOAD and GUARDARENA_OPTIONS set,
// and a test checks how it ended (signal or exit status) and what it wrote.
// The suites that exercise allocation paths run on both guard backends
// (BugTest, BackendTest, RealProgramTest, SamplingTest, LeakTest, ForkTest,
// SignalTest, DlopenTest, HeapCheckTest); on the default backend only (guard
// where the kernel has it): OptionsTest, JsonReportTest, SizeBandTest,
// FastModeTest and StackTest (their loops add backend=mprotect where it
// matters), and the suites that do not depend on the backend: ExportsTest,
// LauncherTest, OldKernelTest (the kernel without guard markers chooses it),
// ExhaustionTest (the mprotect budget by design).
#pragma once

#include <sys/types.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "support/child_process.h"
#include "test_support.h"

namespace guardarena::preload_testing {

namespace fs = std::filesystem;

inline const std::string kLibrary = GUARDARENA_PRELOAD_LIB;
inline const std::string kLauncher = GUARDARENA_LAUNCHER;
inline const std::string kPrograms = GUARDARENA_PROGRAMS_DIR;
inline const std::string kProgramSources = GUARDARENA_PROGRAMS_SOURCE_DIR;
inline const std::string kRealPrograms = GUARDARENA_REAL_PROGRAMS_DIR;

// How a child ended and what it wrote, and its pid (for /proc and logs named
// after it).
struct Result : guardarena::testing::ChildOutcome {
  pid_t pid = 0;
};

struct Run {
  std::vector<std::string> argv;
  bool preload = true;  // LD_PRELOAD=libguardarena.so and GUARDARENA_OPTIONS=options
  std::string options;
  std::vector<std::string> env;  // NAME=VALUE, set last
  std::string cwd;
  int timeout_seconds = 120;
  bool without_guard_markers = false;     // simulate a kernel before 6.13 (support/old_kernel.h)
  bool without_process_vm_readv = false;  // a sandbox refusing it (support/old_kernel.h)
};

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

struct BackendParam {
  const char* name;
  const char* options;
};
inline const BackendParam kBackends[] = {{"guard", "backend=guard"},
                                         {"mprotect", "backend=mprotect"}};

#define SKIP_IF_UNSUPPORTED(backend)                                                \
  do {                                                                              \
    if (std::string((backend).name) == "guard") GUARDARENA_REQUIRE_GUARD_MARKERS(); \
  } while (0)

#define REQUIRE_TOOL(tool)                                     \
  do {                                                         \
    if (!have(tool)) GTEST_SKIP() << tool " is not installed"; \
  } while (0)

inline constexpr char kError[] = "ERROR: guardarena: ";

bool starts_with(const std::string& s, const std::string& prefix);

// Runs r.argv[0] (searched in PATH) with the environment of this process,
// minus LD_PRELOAD and GUARDARENA_OPTIONS, plus what `r` asks for; stdin is
// /dev/null. Kills the child when the timeout expires.
Result run(const Run& r);

std::string program(const std::string& name);

std::string read_file(const std::string& path);

bool contains(const std::string& haystack, const std::string& regex);

std::size_t count_lines_with(const std::string& text, const std::string& needle);

// stderr without guardarena's one-time warning that guard pages ran out
// (the mprotect backend's VMA budget): the only line the shim may add to a
// correct program's output, and at most once.
std::string without_exhaustion_warning(const std::string& err);

std::string with_backend(const BackendParam& b, const std::string& extra = "");

// The bug programs run on both backends; where guard markers are accepted
// and not enforced (an emulator such as qemu-user), with the default options
// instead of backend=guard: backend=auto must then fall back by itself, and
// every report must come out as it does on a kernel.
std::vector<BackendParam> bug_backends();

void PrintTo(const BackendParam& b, std::ostream* os);

// Line of the statement marked BUG in the program's source, and the file name.
std::pair<std::string, int> bug_line(const std::string& name);

std::string backend_name(const ::testing::TestParamInfo<BackendParam>& info);

void expect_same_output(const std::vector<std::string>& argv, const std::string& options,
                        const std::vector<std::string>& env = {});

bool have(const std::string& tool);

// Line of the comment `marker` in programs/<file>.
int marker_line(const std::string& file, const std::string& marker);

// Sampling, leaks, fork, signals and dlopen: each run's options start with
// the backend under test.
class BothBackends : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override { SKIP_IF_UNSUPPORTED(GetParam()); }
  std::string opts(const std::string& extra = "") const { return with_backend(GetParam(), extra); }
};

}  // namespace guardarena::preload_testing
