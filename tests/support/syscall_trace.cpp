// See syscall_trace.h. The tracer follows every thread of the child
// (PTRACE_O_TRACECLONE), counts syscall-entry stops (PTRACE_O_TRACESYSGOOD
// tells them from signal stops) and reads each one's number with
// PTRACE_GET_SYSCALL_INFO, which needs no per-architecture register layout.
#include "support/syscall_trace.h"

#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

extern char** environ;

namespace guardarena::testing {
namespace {

// Syscall numbers no kernel implements (ENOSYS): the child's way to mark the
// counting window without a real call the count would have to subtract.
constexpr long kBeginMark = 0x7ffe0001;
constexpr long kEndMark = 0x7ffe0002;
constexpr long kFaultsMark = 0x7ffe0003;  // args[0]: minor faults inside the window

// Page faults the child's own instructions take, from the perf software
// event: unlike getrusage's ru_minflt it leaves out the pages the kernel
// populates on the program's behalf (MADV_POPULATE_WRITE goes through GUP,
// which perf does not count), so a page committed ahead is not a fault.
int g_fault_counter = -1;
constexpr std::uint64_t kFaultsUnknown = ~std::uint64_t{0};

int open_fault_counter() noexcept {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_PAGE_FAULTS_MIN;
  attr.disabled = 1;
  attr.exclude_kernel = 1;  // the child's faults in user space, allowed at perf_event_paranoid 2
  attr.exclude_hv = 1;
  attr.inherit = 1;  // threads started inside the window
  return static_cast<int>(::syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC));
}

// Exit status of a child whose PTRACE_TRACEME was refused.
constexpr int kTraceRefused = 121;

// The child's side: become traceable, stop so the tracer can set its
// options before anything is counted. Returns false when tracing is refused.
bool become_tracee(int out_fd) noexcept {
  ::dup2(out_fd, 1);
  ::dup2(out_fd, 2);
  if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) return false;
  ::raise(SIGSTOP);
  return true;
}

std::string read_all(int fd) {
  std::string s;
  ::lseek(fd, 0, SEEK_SET);
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
  }
  return s;
}

// The tracer's side, from the child's first stop to its exit.
TracedRun trace(pid_t pid, int out_fd) {
  TracedRun run;
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) {
    run.why_not = std::string("waitpid: ") + std::strerror(errno);
    return run;
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == kTraceRefused) {
    run.why_not = "PTRACE_TRACEME is refused here (ptrace not permitted)";
    run.status = st;
    ::close(out_fd);
    return run;
  }
  if (!WIFSTOPPED(st)) {
    run.why_not = "the child did not stop for its tracer";
    run.status = st;
    ::close(out_fd);
    return run;
  }
  const long options = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL;
  if (::ptrace(PTRACE_SETOPTIONS, pid, nullptr, reinterpret_cast<void*>(options)) != 0) {
    run.why_not = std::string("PTRACE_SETOPTIONS: ") + std::strerror(errno);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    ::close(out_fd);
    return run;
  }
  run.traced = true;
  bool counting = true;  // until a begin mark says otherwise
  bool marked = false;
  std::set<pid_t> known{pid};  // threads whose first stop has been seen
  ::ptrace(PTRACE_SYSCALL, pid, nullptr, nullptr);
  for (;;) {
    pid_t tid = ::waitpid(-1, &st, __WALL);
    if (tid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: every thread is gone
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (tid == pid) run.status = st;
      continue;
    }
    if (!WIFSTOPPED(st)) continue;
    int deliver = 0;
    const int sig = WSTOPSIG(st);
    const int event = st >> 16;
    if (sig == (SIGTRAP | 0x80)) {
      __ptrace_syscall_info info{};
      long got =
          ::ptrace(PTRACE_GET_SYSCALL_INFO, tid, reinterpret_cast<void*>(sizeof info), &info);
      if (got > 0 && info.op == PTRACE_SYSCALL_INFO_ENTRY) {
        const auto nr = static_cast<long>(info.entry.nr);
        if (nr == kBeginMark) {
          if (!marked) {
            run.syscalls = 0;
            run.by_number.clear();
          }
          marked = true;
          counting = true;
        } else if (nr == kEndMark) {
          counting = false;
        } else if (nr == kFaultsMark) {
          run.faults_counted = info.entry.args[0] != kFaultsUnknown;
          run.minor_faults = run.faults_counted ? info.entry.args[0] : 0;
        } else if (counting) {
          ++run.syscalls;
          ++run.by_number[nr];
        }
      }
    } else if (event != 0) {
      // PTRACE_EVENT_CLONE and friends: nothing to deliver
    } else if (sig == SIGSTOP && known.insert(tid).second) {
      // A new thread's first stop (PTRACE_O_TRACECLONE starts it stopped);
      // it may arrive before the clone event of the thread that made it.
    } else {
      deliver = sig;  // a real signal: pass it on
    }
    ::ptrace(PTRACE_SYSCALL, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(deliver)));
  }
  run.out = read_all(out_fd);
  ::close(out_fd);
  return run;
}

int make_out_fd() {
  int fd = static_cast<int>(::syscall(SYS_memfd_create, "traced-output", 0u));
  if (fd < 0) {
    char tmpl[] = "/tmp/guardarena-trace-XXXXXX";
    fd = ::mkstemp(tmpl);
    if (fd >= 0) ::unlink(tmpl);
  }
  return fd;
}

}  // namespace

void begin_counting() noexcept {
  if (g_fault_counter < 0) g_fault_counter = open_fault_counter();
  if (g_fault_counter >= 0) {
    ::ioctl(g_fault_counter, PERF_EVENT_IOC_RESET, 0);
    ::ioctl(g_fault_counter, PERF_EVENT_IOC_ENABLE, 0);
  }
  ::syscall(kBeginMark);
}

void end_counting() noexcept {
  ::syscall(kEndMark);
  std::uint64_t faults = kFaultsUnknown;
  if (g_fault_counter >= 0) {
    ::ioctl(g_fault_counter, PERF_EVENT_IOC_DISABLE, 0);
    if (::read(g_fault_counter, &faults, sizeof faults) != sizeof faults) faults = kFaultsUnknown;
  }
  ::syscall(kFaultsMark, faults);
}

void child_write(const char* text) noexcept {
  std::size_t len = std::strlen(text);
  while (len > 0) {
    ssize_t n = ::write(1, text, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    len -= static_cast<std::size_t>(n);
  }
}

bool TracedRun::exited_ok() const {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::uint64_t TracedRun::count(long number) const {
  auto it = by_number.find(number);
  return it == by_number.end() ? 0 : it->second;
}

std::string TracedRun::describe() const {
  std::ostringstream s;
  if (WIFEXITED(status)) {
    s << "exited with " << WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s << "killed by signal " << WTERMSIG(status);
  }
  s << "; " << syscalls << " syscalls (";
  const char* sep = "";
  for (const auto& [nr, n] : by_number) {
    s << sep << "#" << nr << " x" << n;
    sep = ", ";
  }
  s << "), ";
  if (faults_counted) {
    s << minor_faults << " page faults";
  } else {
    s << "page faults not counted (no perf_event_open)";
  }
  s << "\n--- output ---\n" << out.substr(0, 4000);
  return s.str();
}

TracedRun trace_child(const std::function<int()>& body) {
  std::fflush(nullptr);
  int out_fd = make_out_fd();
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!become_tracee(out_fd)) ::_exit(kTraceRefused);
    int rc = body();
    ::_exit(rc);
  }
  return trace(pid, out_fd);
}

TracedRun trace_program(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = env;
  std::vector<char*> argp;
  for (std::string& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::fflush(nullptr);
  int out_fd = make_out_fd();
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!become_tracee(out_fd)) ::_exit(kTraceRefused);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  return trace(pid, out_fd);
}

bool ptrace_permitted(std::string* why_not) {
  TracedRun r = trace_child([] { return 0; });
  if (!r.traced && why_not != nullptr) *why_not = r.why_not;
  return r.traced;
}

KernelVersion kernel_version() {
  utsname u{};
  KernelVersion v;
  if (::uname(&u) == 0) std::sscanf(u.release, "%d.%d", &v.major, &v.minor);
  return v;
}

}  // namespace guardarena::testing
