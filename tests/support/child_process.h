// Runs a program in a child process with exactly the environment given (plus
// the emulator's QEMU_LD_PREFIX when the tests run under qemu-user) and
// collects how it ended and what it wrote, for tests that check a program from
// outside. A hook runs in the child between fork and execve (drop privileges,
// install a seccomp filter); if it fails the child exits with 120.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace guardarena::testing {

struct ChildOutcome {
  int status = -1;
  bool timed_out = false;
  std::string out;
  std::string err;
  bool signaled(int sig) const {
    return !timed_out && WIFSIGNALED(status) && WTERMSIG(status) == sig;
  }
  bool exited(int code) const {
    return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == code;
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

inline std::string read_whole_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// stdout and stderr go to files in `scratch_dir` (created by the parent, so a
// child that drops privileges can still write them).
template <class BeforeExec>
ChildOutcome run_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       const std::filesystem::path& scratch_dir, BeforeExec before_exec,
                       std::chrono::seconds timeout = std::chrono::seconds(60)) {
  ChildOutcome o;
  const auto out_file = scratch_dir / "child.stdout";
  const auto err_file = scratch_dir / "child.stderr";
  const int out_fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err_fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  // The emulator's setting is not the program's environment: under
  // qemu-user (the arm64 test step) it is how the child's loader is found.
  const char* qemu_prefix = std::getenv("QEMU_LD_PREFIX");
  const std::string qemu_entry =
      qemu_prefix != nullptr ? std::string("QEMU_LD_PREFIX=") + qemu_prefix : "";
  if (!qemu_entry.empty() && std::none_of(env.begin(), env.end(), [](const std::string& e) {
        return e.starts_with("QEMU_LD_PREFIX=");
      }))
    envp.push_back(const_cast<char*>(qemu_entry.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (!before_exec()) ::_exit(120);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (::waitpid(pid, &o.status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &o.status, 0);
      o.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  o.out = read_whole_file(out_file);
  o.err = read_whole_file(err_file);
  return o;
}

}  // namespace guardarena::testing
