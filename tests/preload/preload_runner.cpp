// The preload tests' harness (preload_runner.h).
#include "preload_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>

#include "support/kernel_facts.h"
#include "support/old_kernel.h"

extern char** environ;

namespace guardarena::preload_testing {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

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
    if (r.without_process_vm_readv && !guardarena::testing::refuse_process_vm_readv(nullptr))
      ::_exit(125);
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

std::string without_exhaustion_warning(const std::string& err) {
  std::istringstream in(err);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    if (!starts_with(line, "guardarena: warning: ")) kept += line + "\n";
  }
  return kept;
}

std::string with_backend(const BackendParam& b, const std::string& extra) {
  if (b.options[0] == '\0') return extra;
  return extra.empty() ? std::string(b.options) : std::string(b.options) + ":" + extra;
}

std::vector<BackendParam> bug_backends() {
  if (guardarena::testing::guard_markers().ignored) return {{"auto", ""}, kBackends[1]};
  return {kBackends[0], kBackends[1]};
}

void PrintTo(const BackendParam& b, std::ostream* os) {
  *os << b.name;
}

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

std::string backend_name(const ::testing::TestParamInfo<BackendParam>& info) {
  return info.param.name;
}

void expect_same_output(const std::vector<std::string>& argv, const std::string& options,
                        const std::vector<std::string>& env) {
  Result native = run({.argv = argv, .preload = false, .env = env});
  ASSERT_TRUE(native.exited(0)) << native.describe();
  Result shim = run({.argv = argv, .options = options, .env = env});
  EXPECT_TRUE(shim.exited(0)) << shim.describe();
  EXPECT_EQ(shim.out, native.out);
  EXPECT_EQ(without_exhaustion_warning(shim.err), native.err);
  EXPECT_LE(count_lines_with(shim.err, "guardarena: warning: "), 1u);
}

bool have(const std::string& tool) {
  return run({.argv = {"sh", "-c", "command -v " + tool}, .preload = false}).exited(0);
}

int marker_line(const std::string& file, const std::string& marker) {
  std::ifstream in(kProgramSources + "/" + file);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.find(marker) != std::string::npos) return n;
  }
  return 0;
}

}  // namespace guardarena::preload_testing
