// Secure execution, tested the way it is deployed: a set-user-ID copy of
// libguardarena.so in the system library directory (the only place the
// loader takes an LD_PRELOAD library from for a set-user-ID program), a
// set-user-ID root bug program, and an unprivileged caller (nobody) who sets
// hostile options. The caller's "symbolizer" and log file must never appear;
// the report must still be printed and the program stopped at the write.
// Needs root (CI runs as root); skips with the reason otherwise.
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.h"

namespace guardarena {
namespace {

namespace fs = std::filesystem;

const std::string kLibrary = GUARDARENA_PRELOAD_LIB;
const std::string kLauncher = GUARDARENA_LAUNCHER;
const std::string kPrograms = GUARDARENA_PROGRAMS_DIR;

// Every option the policy must refuse from the caller, and the names the
// warning line must list for them.
const std::vector<std::string> kRefused = {"on_exhaustion",   "alignment",    "quarantine_bytes",
                                           "reserve_size",    "depot_size",   "log_path",
                                           "symbolizer_path", "detect_leaks", "print_stats"};

using testing::ChildOutcome;
using Outcome = ChildOutcome;

std::string read_file(const fs::path& p) {
  return testing::read_whole_file(p);
}

void copy_with_mode(const fs::path& from, const fs::path& to, mode_t mode) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  ASSERT_EQ(::chown(to.c_str(), 0, 0), 0) << to;
  // chmod after chown: chown clears the set-user-ID bit.
  ASSERT_EQ(::chmod(to.c_str(), mode), 0) << to;
}

// The directory libc was loaded from: one of the loader's trusted system
// directories on every distribution.
fs::path system_library_directory() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&::printf), &info) == 0 || info.dli_fname == nullptr)
    return {};
  return fs::path(info.dli_fname).parent_path();
}

class SecureExecutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root: installs a set-user-ID library and set-user-ID programs";
    const passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) GTEST_SKIP() << "no 'nobody' user to run the programs as";
    uid_ = nobody->pw_uid;
    gid_ = nobody->pw_gid;
    char templ[] = "/tmp/guardarena-secure-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    struct statvfs vfs {};
    ASSERT_EQ(::statvfs(dir_.c_str(), &vfs), 0);
    if ((vfs.f_flag & ST_NOSUID) != 0) GTEST_SKIP() << "/tmp is mounted nosuid";
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    out_ = dir_ / "out";
    fs::create_directory(out_);
    ASSERT_EQ(::chmod(out_.c_str(), 01777), 0);  // the caller may write here
    // The caller's own program, offered as the symbolizer: it records who ran it.
    evil_ = dir_ / "evil-symbolizer";
    {
      std::ofstream s(evil_);
      s << "#!/bin/sh\necho \"euid=$(id -u)\" > " << (out_ / "evil-ran").string() << "\n";
    }
    ASSERT_EQ(::chmod(evil_.c_str(), 0755), 0);
    fs::path sysdir = system_library_directory();
    ASSERT_FALSE(sysdir.empty());
    library_name_ = "libguardarena-secure-test-" + std::to_string(::getpid()) + ".so";
    installed_library_ = sysdir / library_name_;
    copy_with_mode(kLibrary, installed_library_, 04755);
  }

  void TearDown() override {
    std::error_code ec;
    if (!installed_library_.empty()) fs::remove(installed_library_, ec);
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::string hostile_options() const {
    return "symbolizer_path=" + evil_.string() + ":log_path=" + (out_ / "log").string() +
           ":reserve_size=1T:quarantine_bytes=1T:depot_size=1G:print_stats=1:detect_leaks=1"
           ":alignment=1:on_exhaustion=fail";
  }

  // Copies `program` into the test directory owned by root, with `mode`.
  fs::path install(const fs::path& program, mode_t mode) {
    fs::path to = dir_ / program.filename();
    copy_with_mode(program, to, mode);
    return to;
  }

  // Runs argv as the unprivileged user with exactly `env`.
  Outcome run_as_nobody(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    Outcome o = testing::run_child(argv, env, dir_, [this] {
      return ::setgroups(0, nullptr) == 0 && ::setgid(gid_) == 0 && ::setuid(uid_) == 0;
    });
    EXPECT_FALSE(o.timed_out) << argv[0];
    return o;
  }

  std::vector<std::string> env_with(const std::string& preload) const {
    return {"PATH=/usr/bin:/bin", "LD_PRELOAD=" + preload,
            "GUARDARENA_OPTIONS=" + hostile_options()};
  }

  // Nothing of the caller's ran and nothing was written where it pointed.
  void expect_nothing_of_the_callers(const Outcome& o) const {
    EXPECT_FALSE(fs::exists(out_ / "evil-ran"))
        << "the caller's symbolizer ran: " << read_file(out_ / "evil-ran") << o.describe();
    for (const auto& entry : fs::directory_iterator(out_))
      ADD_FAILURE() << "file written where the caller pointed: " << entry.path() << o.describe();
  }

  void expect_refused_options_named(const Outcome& o) const {
    std::smatch line;
    ASSERT_TRUE(std::regex_search(o.err, line,
                                  std::regex("secure execution[^\n]*ignored options: ([^\n]*)")))
        << o.describe();
    for (const std::string& name : kRefused)
      EXPECT_NE(line[1].str().find(name), std::string::npos) << name << " not named\n"
                                                             << o.describe();
  }

  // The report is there, stops at the write, and reveals no address.
  void expect_overflow_report_without_addresses(const Outcome& o, const std::string& module) const {
    EXPECT_TRUE(o.signaled(SIGSEGV)) << o.describe();
    EXPECT_NE(o.out.find("reached the statement"), std::string::npos) << o.describe();
    EXPECT_EQ(o.out.find("after the statement"), std::string::npos) << o.describe();
    EXPECT_NE(o.err.find("ERROR: guardarena: heap-buffer-overflow"), std::string::npos)
        << o.describe();
    EXPECT_NE(o.err.find("WRITE at <hidden>"), std::string::npos) << o.describe();
    EXPECT_NE(o.err.find("0 bytes after the 64-byte block"), std::string::npos) << o.describe();
    // Frames keep module+offset, which does not depend on where it was loaded.
    EXPECT_NE(o.err.find("(" + (dir_ / module).string() + "+0x"), std::string::npos)
        << o.describe();
    // file:line comes only from a symbolizer child, which is never started.
    EXPECT_FALSE(std::regex_search(o.err, std::regex(R"(\.(c|cpp):[0-9]+)")))
        << "a symbolizer child ran\n"
        << o.describe();
    EXPECT_FALSE(std::regex_search(o.err, std::regex("0x[0-9a-f]{12}")))
        << "an absolute address was printed\n"
        << o.describe();
  }

  fs::path dir_;
  fs::path out_;
  fs::path evil_;
  fs::path installed_library_;
  std::string library_name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

TEST_F(SecureExecutionTest, SetuidProgramUnderTheShimIgnoresTheCallersOptions) {
  fs::path program = install(fs::path(kPrograms) / "overflow_write_malloc", 04755);
  Outcome o = run_as_nobody({program.string()}, env_with(library_name_));
  expect_overflow_report_without_addresses(o, "overflow_write_malloc");
  expect_refused_options_named(o);
  expect_nothing_of_the_callers(o);
}

TEST_F(SecureExecutionTest, SetuidProgramThatLeaksPrintsNoStatisticsAndNoLeaks) {
  fs::path program = install(fs::path(kPrograms) / "leaks", 04755);
  Outcome o = run_as_nobody({program.string()}, env_with(library_name_));
  EXPECT_TRUE(o.exited(0)) << o.describe();
  EXPECT_EQ(o.out, "done\n") << o.describe();
  expect_refused_options_named(o);
  EXPECT_EQ(o.err.find("guardarena: statistics"), std::string::npos) << o.describe();
  EXPECT_EQ(o.err.find("detected memory leaks"), std::string::npos) << o.describe();
  expect_nothing_of_the_callers(o);
}

// The control: the same caller, the same options, the same program without
// the set-user-ID bit. The options are honoured there, so the checks above
// can see a symbolizer that ran and a log that was written.
TEST_F(SecureExecutionTest, OrdinaryProgramHonoursTheSameOptions) {
  fs::path program = install(fs::path(kPrograms) / "overflow_write_malloc", 0755);
  fs::path library = install(kLibrary, 0755);
  Outcome o = run_as_nobody({program.string()}, env_with(library.string()));
  EXPECT_TRUE(o.signaled(SIGSEGV)) << o.describe();
  EXPECT_EQ(read_file(out_ / "evil-ran"), "euid=" + std::to_string(uid_) + "\n") << o.describe();
  bool logged = false;
  for (const auto& entry : fs::directory_iterator(out_))
    logged |= entry.path().filename().string().rfind("log.", 0) == 0;
  EXPECT_TRUE(logged) << o.describe();
  EXPECT_EQ(o.err.find("secure execution"), std::string::npos) << o.describe();
}

TEST_F(SecureExecutionTest, OrdinaryProgramThatLeaksPrintsStatisticsAndLeaks) {
  fs::path program = install(fs::path(kPrograms) / "leaks", 0755);
  fs::path library = install(kLibrary, 0755);
  std::vector<std::string> env = env_with(library.string());
  env.back() += ":log_path=";  // the leak report on stderr, where the checks look
  Outcome o = run_as_nobody({program.string()}, env);
  EXPECT_NE(o.err.find("guardarena: statistics"), std::string::npos) << o.describe();
  EXPECT_NE(o.err.find("detected memory leaks"), std::string::npos) << o.describe();
}

TEST_F(SecureExecutionTest, SetuidPmrProgramIgnoresOptionsFromItsEnvironment) {
  fs::path program = install(fs::path(kPrograms) / "pmr_env_overflow", 04755);
  Outcome o = run_as_nobody({program.string()},
                            {"PATH=/usr/bin:/bin", "GUARDARENA_OPTIONS=" + hostile_options()});
  expect_overflow_report_without_addresses(o, "pmr_env_overflow");
  expect_refused_options_named(o);
  expect_nothing_of_the_callers(o);
}

TEST_F(SecureExecutionTest, SetuidLauncherRefusesToRun) {
  fs::path launcher = install(kLauncher, 04755);
  fs::path program = install(fs::path(kPrograms) / "overflow_write_malloc", 0755);
  fs::path library = install(kLibrary, 0755);
  Outcome o = run_as_nobody({launcher.string(), "--", program.string(), "ok"},
                            {"PATH=/usr/bin:/bin", "GUARDARENA_LIBRARY=" + library.string(),
                             "GUARDARENA_OPTIONS=" + hostile_options()});
  EXPECT_TRUE(o.exited(1)) << o.describe();
  EXPECT_NE(o.err.find("refusing to run in secure-execution mode"), std::string::npos)
      << o.describe();
  EXPECT_EQ(o.out.find("reached the statement"), std::string::npos) << o.describe();
  expect_nothing_of_the_callers(o);
}

}  // namespace
}  // namespace guardarena
