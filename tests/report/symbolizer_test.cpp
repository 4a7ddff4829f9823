// Tests for report-time symbolization: real llvm-symbolizer/addr2line runs on
// this (PIE) test binary, the parsers against fake symbolizer scripts, the
// timeout and fallback paths, and what the child process may see. Helpers are
// noinline so their names and lines appear in the output.
#include "report/symbolizer.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "stack/stack_trace.h"

namespace guardarena::report {
namespace {

constexpr std::size_t kDepth = 16;

int g_leaf_line = 0;
int g_outer_line = 0;

[[gnu::noinline]] std::size_t symbolizer_test_leaf(std::uintptr_t *pcs,
                                                   std::size_t max) {
  g_leaf_line = __LINE__ + 1;
  const std::size_t n = stack::capture(pcs, max, 0);
  asm volatile("" ::: "memory");
  return n;
}

[[gnu::noinline]] std::size_t symbolizer_test_outer(std::uintptr_t *pcs,
                                                    std::size_t max) {
  g_outer_line = __LINE__ + 1;
  const std::size_t n = symbolizer_test_leaf(pcs, max);
  asm volatile("" ::: "memory");
  return n;
}

std::string exe_path() {
  char buf[4096];
  const ssize_t len = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return len > 0 ? std::string(buf, static_cast<std::size_t>(len))
                 : std::string();
}

// Runs print_stack into a memory buffer and returns the text.
std::string print(const std::uintptr_t *pcs, std::size_t n,
                  const SymbolizerConfig &config,
                  bool first_is_fault_pc = false) {
  std::vector<char> buf(256 * 1024);
  RawWriter out(buf.data(), buf.size());
  print_stack(out, -1, pcs, n, config, first_is_fault_pc);
  return std::string(out.data(), out.size());
}

std::vector<std::string> lines_of(const std::string &text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

// POSIX extended regex search (std::regex trips GCC 12 warnings in sanitizer
// builds).
bool matches(const std::string &text, const std::string &pattern) {
  regex_t re;
  if (regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) {
    ADD_FAILURE() << "bad pattern " << pattern;
    return false;
  }
  const bool found = regexec(&re, text.c_str(), 0, nullptr, 0) == 0;
  regfree(&re);
  return found;
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

// A temporary directory with executable scripts, removed afterwards.
class ScriptDir {
public:
  ScriptDir() {
    char tmpl[] = "/tmp/guardarena_symbolizer_test.XXXXXX";
    const char *dir = mkdtemp(tmpl);
    if (dir != nullptr)
      dir_ = dir;
  }
  ~ScriptDir() {
    for (const auto &f : files_)
      unlink(f.c_str());
    if (!dir_.empty())
      rmdir(dir_.c_str());
  }
  std::string write(const std::string &name, const std::string &body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0755);
    files_.push_back(path);
    return path;
  }
  std::string file(const std::string &name) {
    files_.push_back(dir_ + "/" + name);
    return files_.back();
  }

private:
  std::string dir_;
  std::vector<std::string> files_;
};

std::size_t open_fd_count() {
  std::size_t n = 0;
  if (DIR *d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr)
      ++n;
    closedir(d);
  }
  return n;
}

void expect_symbolized(const std::string &text) {
  EXPECT_TRUE(contains(text, "symbolizer_test_leaf")) << text;
  EXPECT_TRUE(
      contains(text, "symbolizer_test.cpp:" + std::to_string(g_leaf_line)))
      << text;
  EXPECT_TRUE(contains(text, "symbolizer_test_outer")) << text;
  EXPECT_TRUE(
      contains(text, "symbolizer_test.cpp:" + std::to_string(g_outer_line)))
      << text;
  EXPECT_TRUE(contains(text, "(" + exe_path() + "+0x")) << text;
}

// Whether this machine has a symbolizer, decided without the library's own
// search; where it has one, the library must find it.
bool symbolizer_installed() {
  for (const char *path : {"/usr/bin/llvm-symbolizer", "/usr/bin/addr2line"}) {
    if (access(path, X_OK) == 0)
      return true;
  }
  return false;
}

#define REQUIRE_SYMBOLIZER()                                                   \
  do {                                                                         \
    if (!symbolizer_installed())                                               \
      GTEST_SKIP() << "neither /usr/bin/llvm-symbolizer nor "                  \
                      "/usr/bin/addr2line is here";                            \
    ASSERT_TRUE(symbolizer_available(SymbolizerConfig{}))                      \
        << "a symbolizer is installed but the library finds none";             \
  } while (0)

TEST(SymbolizerTest, AutoSymbolizerNamesFunctionsFilesAndLines) {
  REQUIRE_SYMBOLIZER();
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  ASSERT_GE(n, 2u);
  const std::string text = print(pcs, n, SymbolizerConfig{});
  expect_symbolized(text);
  // "    #0 0x<pc> in <function> <file>:<line> (<module>+0x<offset>)"
  EXPECT_TRUE(matches(
      lines_of(text).at(0),
      R"(^    #0 0x[0-9a-f]+ in [^ ].* [^ ]+symbolizer_test\.cpp:[0-9]+ \(.+\+0x[0-9a-f]+\)$)"))
      << text;
}

TEST(SymbolizerTest, LlvmSymbolizerByPath) {
  const char *path = "/usr/bin/llvm-symbolizer";
  if (access(path, X_OK) != 0)
    GTEST_SKIP() << path << " not installed";
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  expect_symbolized(print(pcs, n, SymbolizerConfig{path, 5000}));
}

TEST(SymbolizerTest, Addr2lineByPath) {
  const char *path = "/usr/bin/addr2line";
  if (access(path, X_OK) != 0)
    GTEST_SKIP() << path << " not installed";
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  expect_symbolized(print(pcs, n, SymbolizerConfig{path, 5000}));
}

TEST(SymbolizerTest, FaultPcIsLookedUpAsIsAndReturnAddressesAtPcMinusOne) {
  REQUIRE_SYMBOLIZER();
  // The first byte of a function: as a faulting pc it is that function; as a
  // return address, pc - 1 belongs to whatever precedes it.
  const std::uintptr_t pcs[] = {
      reinterpret_cast<std::uintptr_t>(&symbolizer_test_leaf)};
  const std::string as_fault = print(pcs, 1, SymbolizerConfig{}, true);
  const std::string as_return = print(pcs, 1, SymbolizerConfig{}, false);
  EXPECT_TRUE(contains(as_fault, "symbolizer_test_leaf")) << as_fault;
  EXPECT_FALSE(contains(as_return, "symbolizer_test_leaf")) << as_return;
}

struct CollectedFrame {
  std::size_t number, index;
  std::uintptr_t pc, module_offset;
  std::string function, location, module;
  bool from_dladdr;
};

void collect(const SymbolizedFrame &f, void *context) noexcept {
  static_cast<std::vector<CollectedFrame> *>(context)->push_back(
      {f.number, f.index, f.pc, f.module_offset, f.function, f.location,
       f.module, f.function_from_dladdr});
}

TEST(SymbolizerTest, SymbolizeStackHandsOutStructuredFrames) {
  REQUIRE_SYMBOLIZER();
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  std::vector<CollectedFrame> frames;
  symbolize_stack(pcs, n, SymbolizerConfig{}, false, collect, &frames);
  ASSERT_GE(frames.size(), n);
  const CollectedFrame &leaf = frames[0];
  EXPECT_EQ(leaf.number, 0u);
  EXPECT_EQ(leaf.index, 0u);
  EXPECT_EQ(leaf.pc, pcs[0]);
  EXPECT_TRUE(contains(leaf.function, "symbolizer_test_leaf")) << leaf.function;
  EXPECT_FALSE(leaf.from_dladdr);
  EXPECT_TRUE(contains(leaf.location,
                       "symbolizer_test.cpp:" + std::to_string(g_leaf_line)))
      << leaf.location;
  EXPECT_EQ(leaf.module, exe_path());
  EXPECT_LT(leaf.module_offset, leaf.pc);
  for (std::size_t i = 1; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].number, i);
    EXPECT_GE(frames[i].index, frames[i - 1].index);
  }
}

TEST(SymbolizerTest, TimeoutKillsTheSymbolizerAndPrintsModuleOffsets) {
  ScriptDir dir;
  // Never answers within the life of the test: only the deadline ends it.
  const std::string script = dir.write("hanging-symbolizer", "exec sleep 3600");
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  const std::size_t fds_before = open_fd_count();

  // The deadline must fire (without it print() waits until CTest's timeout
  // fails the test), and the frames still print, as module+offset.
  const std::string text = print(pcs, n, SymbolizerConfig{script.c_str(), 300});
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), n) << text;
  EXPECT_TRUE(contains(lines[0], "    #0 0x")) << text;
  EXPECT_TRUE(contains(lines[0], "(" + exe_path() + "+0x")) << text;
  // Killed and reaped: no child left, no descriptor leaked.
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(open_fd_count(), fds_before);
}

TEST(SymbolizerTest, MissingSymbolizerFallsBackToModuleOffsets) {
  const SymbolizerConfig config{"/nonexistent/llvm-symbolizer", 5000};
  EXPECT_FALSE(symbolizer_available(config));
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  const std::string text = print(pcs, n, config);
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), n) << text;
  for (const auto &line : lines)
    EXPECT_TRUE(contains(line, "+0x")) << line;
  EXPECT_TRUE(contains(lines[0], "(" + exe_path() + "+0x")) << text;
}

TEST(SymbolizerTest, EmptyPathDisablesTheExternalSymbolizer) {
  const SymbolizerConfig config{"", 5000};
  EXPECT_FALSE(symbolizer_available(config));
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  const std::string text = print(pcs, n, config);
  EXPECT_EQ(lines_of(text).size(), n);
  EXPECT_FALSE(contains(text, "symbolizer_test.cpp")) << text;
}

TEST(SymbolizerTest, DladdrNamesExportedFunctionsWhenNothingElseWorks) {
  // write() lives in libc (or a sanitizer runtime's interceptor) and is
  // exported, so dladdr names it.
  const std::uintptr_t pcs[] = {reinterpret_cast<std::uintptr_t>(&::write) + 1};
  const std::string text = print(pcs, 1, SymbolizerConfig{"", 0});
  EXPECT_TRUE(matches(
      lines_of(text).at(0),
      R"(in [a-z_]*write[a-z_]*\+0x0 \(/[^ ]+\.so[.0-9]*\+0x[0-9a-f]+\)$)"))
      << text;
}

TEST(SymbolizerTest, AddressesOutsideAnyModuleStillPrint) {
  const std::uintptr_t pcs[] = {0x10, 0};
  const std::string text = print(pcs, 2, SymbolizerConfig{});
  EXPECT_EQ(text, "    #0 0x10\n    #1 0x0\n");
}

TEST(SymbolizerTest, ParsesLlvmOutputWithInlinedFrames) {
  ScriptDir dir;
  const std::string script = dir.write(
      "fake-llvm-symbolizer",
      "while read -r line; do printf "
      "'inner_fn\\n/f/a.cc:1:2\\nouter_fn\\n/f/b.cc:3:4\\n\\n'; done");
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  ASSERT_GE(n, 2u);
  const auto lines =
      lines_of(print(pcs, 2, SymbolizerConfig{script.c_str(), 5000}));
  ASSERT_EQ(lines.size(), 4u);
  const std::string inner =
      R"(^    #[0-9] 0x[0-9a-f]+ in inner_fn /f/a\.cc:1 \(.+\+0x[0-9a-f]+\)$)";
  const std::string outer =
      R"(^    #[0-9] 0x[0-9a-f]+ in outer_fn /f/b\.cc:3 \(.+\+0x[0-9a-f]+\)$)";
  EXPECT_TRUE(matches(lines[0], inner)) << lines[0];
  EXPECT_TRUE(matches(lines[1], outer)) << lines[1];
  EXPECT_TRUE(matches(lines[2], inner)) << lines[2];
  EXPECT_TRUE(contains(lines[3], "    #3 ")) << lines[3];
}

TEST(SymbolizerTest, ParsesAddr2lineOutput) {
  ScriptDir dir;
  const std::string script = dir.write(
      "fake-addr2line", "while read -r line; do printf 'fn_%s\\n/f/c.cc:5 "
                        "(discriminator 2)\\n' \"$line\"; done");
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  ASSERT_GE(n, 2u);
  const auto lines =
      lines_of(print(pcs, 2, SymbolizerConfig{script.c_str(), 5000}));
  ASSERT_EQ(lines.size(), 2u);
  const std::string frame =
      R"(^    #[0-9] 0x[0-9a-f]+ in fn_0x[0-9a-f]+ /f/c\.cc:5 \(.+\+0x[0-9a-f]+\)$)";
  EXPECT_TRUE(matches(lines[0], frame)) << lines[0];
  EXPECT_TRUE(matches(lines[1], frame)) << lines[1];
}

TEST(SymbolizerTest, UnknownAnswersFallBackPerFrame) {
  ScriptDir dir;
  const std::string script =
      dir.write("fake-llvm-symbolizer",
                "while read -r line; do printf '??\\n??:0:0\\n\\n'; done");
  const std::uintptr_t pcs[] = {reinterpret_cast<std::uintptr_t>(&::write) + 1};
  const std::string text =
      print(pcs, 1, SymbolizerConfig{script.c_str(), 5000});
  EXPECT_FALSE(contains(text, "??")) << text;
  EXPECT_TRUE(contains(text, "write")) << text;
}

TEST(SymbolizerTest, ChildEnvironmentHasNoPreloadOrOptions) {
  ScriptDir dir;
  const std::string env_file = dir.file("env.txt");
  const std::string script = dir.write(
      "fake-llvm-symbolizer", "env > '" + env_file + "'; exec cat > /dev/null");
  setenv("LD_PRELOAD", "/nonexistent/libguardarena-test.so", 1);
  setenv("GUARDARENA_OPTIONS", "help=1", 1);
  setenv("LLVM_SYMBOLIZER_OPTS", "--output-style=JSON", 1);
  setenv("GUARDARENA_SYMBOLIZER_TEST_MARKER", "1", 1);
  setenv("SYMBOLIZER_TEST_KEPT", "yes", 1);
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  print(pcs, n, SymbolizerConfig{script.c_str(), 5000});
  unsetenv("LD_PRELOAD");
  unsetenv("GUARDARENA_OPTIONS");
  unsetenv("LLVM_SYMBOLIZER_OPTS");
  unsetenv("GUARDARENA_SYMBOLIZER_TEST_MARKER");
  unsetenv("SYMBOLIZER_TEST_KEPT");

  std::ifstream in(env_file);
  const std::string env((std::istreambuf_iterator<char>(in)),
                        std::istreambuf_iterator<char>());
  EXPECT_TRUE(contains(env, "SYMBOLIZER_TEST_KEPT=yes")) << env;
  EXPECT_FALSE(contains(env, "LD_PRELOAD")) << env;
  EXPECT_FALSE(contains(env, "GUARDARENA_")) << env;
  EXPECT_FALSE(contains(env, "LLVM_SYMBOLIZER_OPTS")) << env;
}

TEST(SymbolizerTest, FlushesEachLineToTheDescriptor) {
  const int fd = memfd_create("symbolizer_test", 0);
  ASSERT_GE(fd, 0);
  char small[512];
  RawWriter out(small, sizeof(small));
  out.str("header\n");
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  print_stack(out, fd, pcs, n, SymbolizerConfig{"", 0});
  EXPECT_EQ(out.size(), 0u);
  std::string text(64 * 1024, '\0');
  const ssize_t len = pread(fd, text.data(), text.size(), 0);
  close(fd);
  ASSERT_GT(len, 0);
  text.resize(static_cast<std::size_t>(len));
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), n + 1) << text;
  EXPECT_EQ(lines[0], "header");
  EXPECT_TRUE(contains(lines[1], "    #0 0x")) << text;
}

TEST(SymbolizerTest, PreservesErrno) {
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  errno = EDOM;
  print(pcs, n, SymbolizerConfig{"/nonexistent/addr2line", 100});
  EXPECT_EQ(errno, EDOM);
}

TEST(SymbolizerTest, AvailabilityFollowsTheConfiguredPath) {
  ScriptDir dir;
  const std::string script = dir.write("fake-llvm-symbolizer", "exit 0");
  EXPECT_TRUE(symbolizer_available(SymbolizerConfig{script.c_str(), 1000}));
  EXPECT_FALSE(symbolizer_available(SymbolizerConfig{"/nonexistent", 1000}));
  EXPECT_FALSE(symbolizer_available(SymbolizerConfig{"", 1000}));
  const bool any = access("/usr/bin/llvm-symbolizer", X_OK) == 0 ||
                   access("/usr/bin/llvm-symbolizer-14", X_OK) == 0 ||
                   access("/usr/bin/addr2line", X_OK) == 0;
  EXPECT_EQ(symbolizer_available(SymbolizerConfig{}), any);
}

TEST(SymbolizerTest, SymbolizerThatDiesAtOnceIsHarmless) {
  ScriptDir dir;
  const std::string script = dir.write("fake-llvm-symbolizer", "exit 3");
  std::uintptr_t pcs[kDepth];
  const std::size_t n = symbolizer_test_outer(pcs, kDepth);
  const std::string text =
      print(pcs, n, SymbolizerConfig{script.c_str(), 5000});
  EXPECT_EQ(lines_of(text).size(), n);
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
}

// The real use: a SIGSEGV handler on a small alternate stack captures the
// fault context and prints it, the faulting pc symbolized as is.
sigjmp_buf g_jump;
char g_report[64 * 1024];
std::size_t g_report_len = 0;

void report_fault(int, siginfo_t *, void *ctx) {
  std::uintptr_t pcs[kDepth];
  const std::size_t n =
      stack::capture_from_context(static_cast<const ucontext_t *>(ctx), pcs,
                                  kDepth, stack::Unwinder::kLibgcc);
  RawWriter out(g_report, sizeof(g_report));
  print_stack(out, -1, pcs, n, SymbolizerConfig{}, /*first_is_fault_pc=*/true);
  g_report_len = out.size();
  siglongjmp(g_jump, 1);
}

[[gnu::noinline]] void opaque() { asm volatile("" ::: "memory"); }

// The line of the faulting load below (a store to a global would be
// scheduled after the load, so the line is counted at compile time).
constexpr int kFaultLine = __LINE__ + 4;

[[gnu::noinline]] int symbolizer_test_faulting_read(volatile int *p) {
  opaque();
  const int v = *p; // kFaultLine
  opaque();
  return v;
}

TEST(SymbolizerTest, PrintsFromASegvHandlerOnAnAltStack) {
  REQUIRE_SYMBOLIZER();
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void *guard =
      mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(guard, MAP_FAILED);
  alignas(16) static char alt[32 * 1024];
  stack_t ss{};
  ss.ss_sp = alt;
  ss.ss_size = sizeof(alt);
  stack_t old_ss{};
  ASSERT_EQ(sigaltstack(&ss, &old_ss), 0);
  struct sigaction sa {};
  struct sigaction old_sa {};
  sa.sa_sigaction = report_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGSEGV, &sa, &old_sa), 0);
  g_report_len = 0;
  if (sigsetjmp(g_jump, 1) == 0)
    symbolizer_test_faulting_read(static_cast<volatile int *>(guard));
  sigaction(SIGSEGV, &old_sa, nullptr);
  sigaltstack(&old_ss, nullptr);
  munmap(guard, page);

  const std::string text(g_report, g_report_len);
  const auto lines = lines_of(text);
  ASSERT_GE(lines.size(), 2u) << text;
  EXPECT_TRUE(contains(lines[0], "symbolizer_test_faulting_read")) << text;
  EXPECT_TRUE(
      contains(lines[0], "symbolizer_test.cpp:" + std::to_string(kFaultLine)))
      << text;
  EXPECT_TRUE(contains(lines[1], "PrintsFromASegvHandlerOnAnAltStack")) << text;
}

} // namespace
} // namespace guardarena::report
