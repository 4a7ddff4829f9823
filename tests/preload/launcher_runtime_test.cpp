// The launcher routes language runtimes' small-object pools through malloc
// (PYTHONMALLOC, G_SLICE, GLIBCXX_FORCE_NEW), so that their objects are
// guarded without the user knowing the variables: a Python buffer overflowed
// through ctypes is caught under `guardarena -- python3 script.py`.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace guardarena {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPython = "/usr/bin/python3";

// A 96-byte buffer (PyMem_Malloc: pymalloc's, or malloc's with
// PYTHONMALLOC=malloc) overflowed by one byte from C (memmove).
constexpr const char* kOverflowScript =
    "import ctypes\n"
    "buf = ctypes.create_string_buffer(96)\n"
    "print('reached the statement', flush=True)\n"
    "ctypes.memmove(buf, b'x' * 97, 97)\n"
    "print('after the statement', flush=True)\n";

class LauncherRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/guardarena-runtime-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    std::ofstream(dir_ / "overflow.py") << kOverflowScript;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  testing::ChildOutcome launch(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), GUARDARENA_LAUNCHER);
    env.push_back("PATH=/usr/bin:/bin");
    return testing::run_child(args, env, dir_, [] { return true; });
  }
  std::string script() const { return (dir_ / "overflow.py").string(); }
  fs::path dir_;
};

TEST_F(LauncherRuntimeTest, PythonObjectsAreGuardedWithoutSettingAnything) {
  if (::access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " is not installed";
  testing::ChildOutcome o = launch({"--", kPython, script()});
  EXPECT_TRUE(o.signaled(SIGSEGV)) << o.describe();
  EXPECT_EQ(o.out, "reached the statement\n") << o.describe();
  EXPECT_NE(o.err.find("ERROR: guardarena: heap-buffer-overflow"), std::string::npos)
      << o.describe();
  EXPECT_NE(o.err.find("WRITE at 0x"), std::string::npos) << o.describe();
  EXPECT_NE(o.err.find("0 bytes after the 96-byte block"), std::string::npos) << o.describe();
}

// The control: with pymalloc kept, the same overflow lands inside one of
// pymalloc's pools, where no guard page is: the write goes through unseen
// (and may crash the interpreter later, having corrupted its pool: that
// crash is reported as a SEGV, not as the overflow).
TEST_F(LauncherRuntimeTest, KeepRuntimeAllocatorsLeavesPymallocOn) {
  if (::access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " is not installed";
  testing::ChildOutcome o = launch({"--keep-runtime-allocators", "--", kPython, script()});
  EXPECT_EQ(o.out, "reached the statement\nafter the statement\n") << o.describe();
  EXPECT_EQ(o.err.find("ERROR: guardarena: heap-"), std::string::npos) << o.describe();
}

TEST_F(LauncherRuntimeTest, SetsEachVariableUnlessTheUserDid) {
  testing::ChildOutcome o = launch({"--", "/usr/bin/env"}, {"G_SLICE=debug-blocks"});
  EXPECT_TRUE(o.exited(0)) << o.describe();
  EXPECT_NE(o.out.find("\nPYTHONMALLOC=malloc\n"), std::string::npos) << o.describe();
  EXPECT_NE(o.out.find("\nGLIBCXX_FORCE_NEW=1\n"), std::string::npos) << o.describe();
  EXPECT_NE(o.out.find("G_SLICE=debug-blocks\n"), std::string::npos) << o.describe();
  EXPECT_EQ(o.out.find("G_SLICE=always-malloc"), std::string::npos) << o.describe();
}

TEST_F(LauncherRuntimeTest, KeepRuntimeAllocatorsSetsNone) {
  testing::ChildOutcome o = launch({"--keep-runtime-allocators", "--", "/usr/bin/env"});
  EXPECT_TRUE(o.exited(0)) << o.describe();
  EXPECT_EQ(o.out.find("PYTHONMALLOC"), std::string::npos) << o.describe();
  EXPECT_EQ(o.out.find("G_SLICE"), std::string::npos) << o.describe();
  EXPECT_EQ(o.out.find("GLIBCXX_FORCE_NEW"), std::string::npos) << o.describe();
}

}  // namespace
}  // namespace guardarena
