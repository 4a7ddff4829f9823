// The memory budget through the shim: programs keeping more live blocks than
// max_guarded_memory can guard run to the end with the output they have
// under glibc, one warning line and resident memory (the kernel's VmHWM)
// within the budget plus what glibc itself uses; on_exhaustion=fail hands
// them NULL/ENOMEM instead. Inside a memory cgroup smaller than the program's
// full-guard need, the default budget (auto) keeps it from being killed.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <tuple>

#include "support/child_process.h"
#include "test_support.h"

namespace guardarena {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kKiBPerMiB = 1024;

std::string program() {
  return std::string(GUARDARENA_PROGRAMS_DIR) + "/budget_live_blocks";
}

std::size_t count_lines_with(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

// The program's result line when every allocation succeeds.
std::string expected_result(std::uint64_t blocks) {
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < blocks; ++i) sum += i & 0xff;
  return "blocks " + std::to_string(blocks) + " sum " + std::to_string(sum) +
         " failed 0 first errno none";
}

// The first line of the program's output (its result) and its VmHWM in kB.
std::string result_line(const std::string& out) {
  return out.substr(0, out.find('\n'));
}
std::uint64_t peak_rss_kb(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("peak rss ([0-9]+) kB"))) return 0;
  return std::stoull(m[1].str());
}
std::uint64_t stat_number(const std::string& err, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(err, m, std::regex(pattern))) return 0;
  return std::stoull(m[1].str());
}

class ScratchDir {
 public:
  ScratchDir() {
    char templ[] = "/tmp/guardarena-budget-XXXXXX";
    if (::mkdtemp(templ) != nullptr) path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

testing::ChildOutcome run_program(const ScratchDir& dir, const std::string& blocks,
                                  const std::string& options, bool preload = true) {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  if (preload) {
    env.push_back("LD_PRELOAD=" GUARDARENA_PRELOAD_LIB);
    env.push_back("GUARDARENA_OPTIONS=" + options);
  }
  return testing::run_child({program(), blocks, "32"}, env, dir.path(), [] { return true; });
}

// ---- an explicit small budget, every mode x backend -------------------------

class ShimBudgetTest : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {
 protected:
  // Forced onto a kernel without guard markers, the guard backend falls back
  // to mprotect with a warning of its own: not the case these tests count.
  void SetUp() override {
    if (std::string(std::get<1>(GetParam())) == "guard") GUARDARENA_REQUIRE_GUARD_MARKERS();
  }
  std::string config() const {
    return std::string("mode=") + std::get<0>(GetParam()) + ":backend=" + std::get<1>(GetParam());
  }
  ScratchDir dir_;
};

TEST_P(ShimBudgetTest, SmallBudgetRunsToTheEndWithinItsMemory) {
  // 100,000 live blocks: about 400 MiB if every one were guarded.
  const testing::ChildOutcome native = run_program(dir_, "100000", "", false);
  ASSERT_TRUE(native.exited(0)) << native.describe();
  const testing::ChildOutcome o =
      run_program(dir_, "100000", config() + ":max_guarded_memory=32M:print_stats=1");
  ASSERT_TRUE(o.exited(0)) << o.describe();
  EXPECT_EQ(result_line(o.out), result_line(native.out));
  EXPECT_EQ(count_lines_with(o.err, "guardarena: warning: "), 1u) << o.err;
  EXPECT_NE(o.err.find("warning: the guarded memory budget (32 MiB, max_guarded_memory) is "
                       "reached with "),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("memory budget 32 MiB (option)"), std::string::npos) << o.err;
  EXPECT_GT(stat_number(o.err, "unguarded at a limit ([0-9]+)"), 50000u) << o.err;
  EXPECT_LE(stat_number(o.err, "guarded resident [0-9]+ MiB, peak ([0-9]+) MiB"), 32u) << o.err;
  // The budget and glibc's own share, with room for guardarena's bookkeeping
  // (the fallback set, metadata, the depot's table): well under the 400 MiB
  // an unbounded run needs.
  EXPECT_LE(peak_rss_kb(o.out), peak_rss_kb(native.out) + (32 + 16) * kKiBPerMiB)
      << "native " << native.out << "guardarena " << o.out;
}

TEST_P(ShimBudgetTest, FailPolicyGetsNullAndEnomemPastTheBudget) {
  const testing::ChildOutcome o =
      run_program(dir_, "20000", config() + ":max_guarded_memory=16M:on_exhaustion=fail");
  ASSERT_TRUE(o.exited(0)) << o.describe();
  std::smatch m;
  const std::string line = result_line(o.out);
  ASSERT_TRUE(std::regex_match(
      line, m, std::regex("blocks ([0-9]+) sum [0-9]+ failed ([0-9]+) first errno ENOMEM")))
      << o.describe();
  EXPECT_LT(std::stoull(m[1].str()), 4200u) << line;  // 16 MiB: about 4,000 pages
  EXPECT_GT(std::stoull(m[2].str()), 15000u) << line;
  EXPECT_EQ(count_lines_with(o.err, "guardarena: warning: "), 0u) << o.err;
}

TEST_P(ShimBudgetTest, ABudgetNeverReachedChangesNothing) {
  const testing::ChildOutcome o =
      run_program(dir_, "5000", config() + ":max_guarded_memory=1G:print_stats=1");
  ASSERT_TRUE(o.exited(0)) << o.describe();
  EXPECT_EQ(result_line(o.out), expected_result(5000));
  EXPECT_EQ(count_lines_with(o.err, "guardarena: warning: "), 0u) << o.err;
  EXPECT_NE(o.err.find("unguarded at a limit 0, guarding 1 allocation in 1\n"), std::string::npos)
      << o.err;
}

std::string config_name(
    const ::testing::TestParamInfo<std::tuple<const char*, const char*>>& config) {
  return std::string(std::get<0>(config.param)) + "_" + std::get<1>(config.param);
}
INSTANTIATE_TEST_SUITE_P(ModesAndBackends, ShimBudgetTest,
                         ::testing::Combine(::testing::Values("full", "fast"),
                                            ::testing::Values("guard", "mprotect")),
                         config_name);

// The mprotect backend's mapping budget follows the same policy: a sample
// stays guarded past it, and the warning and statistics have the same shape.
TEST(ShimVmaBudgetTest, MappingBudgetIsRationedLikeMemory) {
  ScratchDir dir;
  std::ifstream f("/proc/sys/vm/max_map_count");
  std::uint64_t max_map_count = 65530;
  f >> max_map_count;
  // Leaves about 1,000 mappings, a few hundred guarded regions once the
  // program's own are counted.
  const std::string options = "backend=mprotect:print_stats=1:vma_headroom=" +
                              std::to_string(max_map_count > 1000 ? max_map_count - 1000 : 0);
  const testing::ChildOutcome o = run_program(dir, "5000", options);
  ASSERT_TRUE(o.exited(0)) << o.describe();
  EXPECT_EQ(result_line(o.out), expected_result(5000));
  EXPECT_EQ(count_lines_with(o.err, "guardarena: warning: "), 1u) << o.err;
  EXPECT_NE(o.err.find("warning: the vm.max_map_count budget ("), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("guarded regions) is reached with "), std::string::npos) << o.err;
  EXPECT_GT(stat_number(o.err, "unguarded at a limit ([0-9]+)"), 3000u) << o.err;
}

// ---- the default budget inside a memory cgroup -----------------------------

// A child memory cgroup of this process's own, limited to `limit` bytes, on
// cgroup v2 (memory.max) or v1's memory controller (memory.limit_in_bytes);
// removed with the object. Empty path() and a reason when the machine does
// not let this process create one.
class MemoryCgroup {
 public:
  explicit MemoryCgroup(std::uint64_t limit) {
    std::ifstream in("/proc/self/cgroup");
    std::string line, v2_path, v1_path;
    while (std::getline(in, line)) {
      const auto c1 = line.find(':');
      const auto c2 = line.find(':', c1 + 1);
      if (c1 == std::string::npos || c2 == std::string::npos) continue;
      const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
      const std::string path = line.substr(c2 + 1);
      if (line.compare(0, c1, "0") == 0 && controllers.empty()) v2_path = path;
      if (("," + controllers + ",").find(",memory,") != std::string::npos) v1_path = path;
    }
    const std::string name = "guardarena-budget-" + std::to_string(::getpid());
    if (!v2_path.empty() &&
        has_word("/sys/fs/cgroup" + v2_path + "/cgroup.subtree_control", "memory")) {
      make("/sys/fs/cgroup" + v2_path + "/" + name, "memory.max", limit);
    } else if (!v1_path.empty() && fs::exists("/sys/fs/cgroup/memory" + v1_path)) {
      make("/sys/fs/cgroup/memory" + v1_path + "/" + name, "memory.limit_in_bytes", limit);
    } else {
      why_ =
          "no memory controller this process can use (cgroup v2 without memory in "
          "cgroup.subtree_control, no v1 memory hierarchy)";
    }
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return dir_; }
  const std::string& why() const { return why_; }

 private:
  static bool has_word(const std::string& file, const std::string& word) {
    std::ifstream in(file);
    std::string w;
    while (in >> w) {
      if (w == word) return true;
    }
    return false;
  }
  void make(const std::string& dir, const char* limit_file, std::uint64_t limit) {
    if (::mkdir(dir.c_str(), 0755) != 0) {
      why_ = "cannot create " + dir + ": " + std::strerror(errno);
      return;
    }
    dir_ = dir;
    std::ofstream out(dir + "/" + limit_file);
    out << limit;
    out.close();
    if (!out) {
      why_ = "cannot set " + dir + "/" + limit_file;
      ::rmdir(dir_.c_str());
      dir_.clear();
    }
  }
  std::string dir_;
  std::string why_;
};

// Joins the cgroup whose cgroup.procs file is open as `fd`: runs in the
// forked child before execve, so only async-signal-safe calls.
bool join_cgroup(int fd) {
  char digits[24];
  int n = 0;
  for (pid_t pid = ::getpid(); pid > 0; pid /= 10) digits[n++] = static_cast<char>('0' + pid % 10);
  char text[24];
  for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  return ::write(fd, text, static_cast<std::size_t>(n)) == n;
}

class CgroupBudgetTest : public ::testing::TestWithParam<const char*> {};

// 4,000,000 live 32-byte blocks: about 16 GiB if each were guarded, about
// 200 MiB under glibc; the cgroup allows 2 GiB, so auto's budget is 1 GiB.
TEST_P(CgroupBudgetTest, MillionsOfLiveBlocksRunInsideA2GiBCgroup) {
  // Without guard markers the default backend is mprotect, whose mapping
  // budget (vm.max_map_count) binds long before this memory budget does.
  GUARDARENA_REQUIRE_GUARD_MARKERS();
  MemoryCgroup cg(2ull << 30);
  if (cg.path().empty()) GTEST_SKIP() << "cannot create a memory cgroup: " << cg.why();
  ScratchDir dir;
  const int procs = ::open((cg.path() + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(procs, 0);
  const std::string options = GetParam();
  const bool fail = options.find("on_exhaustion=fail") != std::string::npos;
  const testing::ChildOutcome o = testing::run_child(
      {program(), "4000000", "32"},
      {"PATH=/usr/bin:/bin", "LD_PRELOAD=" GUARDARENA_PRELOAD_LIB, "GUARDARENA_OPTIONS=" + options},
      dir.path(), [procs] { return join_cgroup(procs); }, std::chrono::seconds(120));
  ::close(procs);
  ASSERT_TRUE(o.exited(0)) << o.describe();
  if (fail) {
    EXPECT_TRUE(std::regex_match(
        result_line(o.out),
        std::regex("blocks [0-9]+ sum [0-9]+ failed [1-9][0-9]* first errno ENOMEM")))
        << o.describe();
    EXPECT_EQ(count_lines_with(o.err, "guardarena: warning: "), 0u) << o.err;
  } else {
    EXPECT_EQ(result_line(o.out), expected_result(4000000));
    EXPECT_EQ(count_lines_with(o.err, "guardarena: warning: "), 1u) << o.err;
    EXPECT_NE(o.err.find("(1024 MiB, half the memory cgroup's limit)"), std::string::npos) << o.err;
  }
}

std::string options_name(const ::testing::TestParamInfo<const char*>& options) {
  std::string name = options.param;
  for (char& c : name) {
    if (c == '=' || c == ':') c = '_';
  }
  return name;
}
INSTANTIATE_TEST_SUITE_P(DefaultBudget, CgroupBudgetTest,
                         ::testing::Values("mode=full", "mode=fast", "on_exhaustion=fail",
                                           "mode=fast:on_exhaustion=fail"),
                         options_name);

}  // namespace
}  // namespace guardarena
