// The fault handler seen from outside: output formats, handle_segv=0,
// chaining to a program's own SIGSEGV handler, and a fault in one thread
// while others allocate. Each case runs in a forked child whose stderr and
// exit status are checked.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "guardarena/guardarena.hpp"

namespace guardarena {
namespace {

struct ChildResult {
  int status = 0;
  std::string err;
};

// Runs fn in a forked child with stderr captured.
ChildResult run_child(const std::function<void()>& fn) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn();
    _exit(0);
  }
  close(fds[1]);
  ChildResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) r.err.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  waitpid(pid, &r.status, 0);
  return r;
}

// Runs one case of fresh_process_child (a separate program) in a fresh
// process, for cases that need a process where no handler was installed
// yet: handler installation is once per process.
ChildResult run_fresh(const char* child_case) {
  return run_child([&] {
    execl(GUARDARENA_FRESH_PROCESS_CHILD, "fresh_process_child", child_case,
          static_cast<char*>(nullptr));
    _exit(127);
  });
}

[[gnu::noinline, gnu::optimize("O0")]] void poke(void* p, std::ptrdiff_t at) {
  static_cast<volatile char*>(p)[at] = 7;
}

TEST(FaultHandlerTest, JsonReportParsesAndNamesTheBug) {
  std::string prefix = ::testing::TempDir() + "ga-json-" + std::to_string(getpid());
  ChildResult r = run_child([&] {
    guarded_resource res{"report_format=json:log_path=" + prefix};
    void* p = res.allocate(24, 8);
    poke(p, 24 + 3);
  });
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGSEGV);
  EXPECT_EQ(r.err.find("ERROR"), std::string::npos) << "report goes to the log file, not stderr";
  // Exactly one report file, named <prefix>.<pid>.
  std::string cmd = "ls " + prefix + ".* | wc -l";
  FILE* f = popen(cmd.c_str(), "r");
  int files = 0;
  ASSERT_EQ(fscanf(f, "%d", &files), 1);
  pclose(f);
  EXPECT_EQ(files, 1);
  std::string check =
      "/usr/bin/python3 -c 'import json,glob,sys; "
      "d=json.load(open(glob.glob(sys.argv[1]+\".*\")[0])); "
      "assert d[\"kind\"]==\"heap-buffer-overflow\", d; "
      "assert d[\"access\"]==\"WRITE\"; "
      "assert d[\"block\"][\"size\"]==24; "
      "assert d[\"offset\"]==27; "
      "assert any(\"poke\" in fr[\"function\"] for fr in d[\"stacks\"][\"access\"]), "
      "d[\"stacks\"]; "
      "assert any(\"fault_handler_test.cpp\" in fr[\"location\"] for fr in "
      "d[\"stacks\"][\"alloc\"])' " +
      prefix;
  EXPECT_EQ(std::system(check.c_str()), 0);
  std::system(("rm -f " + prefix + ".*").c_str());
}

TEST(FaultHandlerTest, HandleSegvZeroLeavesAPlainSigsegv) {
  ChildResult r = run_fresh("HandleSegvZero");
  ASSERT_TRUE(WIFSIGNALED(r.status)) << r.err;
  EXPECT_EQ(WTERMSIG(r.status), SIGSEGV);
  EXPECT_EQ(r.err.find("guardarena:"), std::string::npos) << r.err;
}

TEST(FaultHandlerTest, ProgramsOwnHandlerStillGetsFaultsThatAreNotOurs) {
  ChildResult r = run_fresh("OwnHandlerThenForeignFault");
  ASSERT_TRUE(WIFEXITED(r.status)) << r.err;
  EXPECT_EQ(WEXITSTATUS(r.status), 42);
  EXPECT_NE(r.err.find("own handler ran"), std::string::npos);
  EXPECT_EQ(r.err.find("guardarena:"), std::string::npos) << r.err;
}

TEST(FaultHandlerTest, GuardFaultIsReportedThenChainsToTheProgramsHandler) {
  ChildResult r = run_fresh("OwnHandlerThenGuardFault");
  ASSERT_TRUE(WIFEXITED(r.status)) << r.err;
  EXPECT_EQ(WEXITSTATUS(r.status), 42);
  EXPECT_NE(r.err.find("heap-buffer-overflow"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("own handler ran"), std::string::npos) << r.err;
}

TEST(FaultHandlerTest, FaultInOneThreadWhileOthersAllocateGivesOneCompleteReport) {
  for (const char* mode : {"mode=full", "mode=fast"}) {
    ChildResult r = run_child([&] {
      guarded_resource res{mode};
      std::atomic<bool> stop{false};
      std::vector<std::thread> workers;
      for (int t = 0; t < 3; ++t) {
        workers.emplace_back([&] {
          while (!stop.load()) res.deallocate(res.allocate(100, 16), 100, 16);
        });
      }
      usleep(20000);
      void* p = res.allocate(32, 16);
      poke(p, 32);
    });
    ASSERT_TRUE(WIFSIGNALED(r.status)) << mode << " status " << r.status << "\n" << r.err;
    EXPECT_EQ(WTERMSIG(r.status), SIGSEGV) << mode;
    EXPECT_NE(r.err.find("ERROR: guardarena: heap-buffer-overflow"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("SUMMARY: guardarena: heap-buffer-overflow (32-byte block)"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("ERROR"), r.err.rfind("ERROR")) << "exactly one report";
  }
}

TEST(FaultHandlerTest, ConcurrentFaultsInTwoThreadsStillGiveOneCompleteReport) {
  ChildResult r = run_child([] {
    guarded_resource res;
    void* a = res.allocate(16, 16);
    void* b = res.allocate(16, 16);
    std::thread t([&] { poke(b, 16); });
    poke(a, 16);
    t.join();
  });
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGSEGV);
  EXPECT_NE(r.err.find("SUMMARY: guardarena"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("ERROR"), r.err.rfind("ERROR")) << r.err;
}

TEST(FaultHandlerTest, SymbolizeZeroPrintsModuleAndOffsetWithoutAChildProcess) {
  ChildResult r = run_child([] {
    guarded_resource res{"symbolize=0"};
    void* p = res.allocate(64, 16);
    poke(p, 64);
  });
  EXPECT_NE(r.err.find("heap-buffer-overflow"), std::string::npos);
  EXPECT_EQ(r.err.find("fault_handler_test.cpp:"), std::string::npos)
      << "no file:line without a symbolizer";
  EXPECT_NE(r.err.find("guardarena_tests+0x"), std::string::npos) << r.err;
}

TEST(FaultHandlerTest, StackDepthZeroStillReports) {
  ChildResult r = run_child([] {
    guarded_resource res{"stack_depth=0"};
    void* p = res.allocate(64, 16);
    poke(p, 64);
  });
  EXPECT_NE(r.err.find("0 bytes after the 64-byte block"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace guardarena
