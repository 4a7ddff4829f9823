// The symbolizer child: llvm-symbolizer or addr2line started with
// clone(CLONE_VM | CLONE_VFORK) on a stack in the scratch mapping, fed the
// frames' module offsets through a socket and read until it answers or the
// deadline passes. Raw system calls in the child (libc wrappers may be
// intercepted); the child never sees LD_PRELOAD or guardarena's options.
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cerrno>

#include "os/secure_execution.h"
#include "report/symbolizer_scratch.h"

extern "C" char** environ;

namespace guardarena::report::symbolizer_detail {
namespace {

// ---------------------------------------------------------------------------
// The child process

struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
};

// The kernel's struct sigaction for rt_sigaction (x86-64 and AArch64 both
// have sa_restorer), and the kernel's signal-set size.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  std::uint64_t mask;
};
constexpr unsigned long kKernelSigsetBytes = 8;
constexpr int kKernelSignals = 64;

// Runs in the child, on its own stack but in our address space, while the
// parent thread is suspended (CLONE_VFORK). Raw syscalls only: libc wrappers
// may be intercepted (sanitizer runtimes hook sigaction and _exit and would
// update their state, which is the parent's memory). Signal dispositions are
// the child's own (no CLONE_SIGHAND), so resetting our handlers to SIG_DFL
// affects the child alone, and keeps them from running on shared memory once
// the signal mask opens.
int child_main(void* arg) noexcept {
  const auto* a = static_cast<const ChildArgs*>(arg);
  for (int sig = 1; sig <= kKernelSignals; ++sig) {
    KernelSigaction sa{};
    if (::syscall(SYS_rt_sigaction, sig, nullptr, &sa, kKernelSigsetBytes) != 0) continue;
    if (sa.handler == reinterpret_cast<void*>(SIG_DFL) ||
        sa.handler == reinterpret_cast<void*>(SIG_IGN)) {
      continue;
    }
    KernelSigaction dfl{};
    dfl.handler = reinterpret_cast<void*>(SIG_DFL);
    ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, kKernelSigsetBytes);
  }
  const std::uint64_t none = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, kKernelSigsetBytes);
  if (::syscall(SYS_dup3, a->stdin_fd, 0, 0) < 0 || ::syscall(SYS_dup3, a->stdout_fd, 1, 0) < 0) {
    ::syscall(SYS_exit_group, 127);
  }
  if (a->stderr_fd >= 0) ::syscall(SYS_dup3, a->stderr_fd, 2, 0);
  // Nothing else of ours leaks into the symbolizer (best effort: needs 5.9+).
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  ::syscall(SYS_execve, a->path, a->argv, a->envp);
  ::syscall(SYS_exit_group, 127);
  return 127;
}

// Builds the child's environment: ours minus kDroppedEnvPrefixes.
void build_env(Scratch* s) noexcept {
  std::size_t n = 0;
  for (char** e = environ; e != nullptr && *e != nullptr && n + 1 < kMaxEnv; ++e) {
    bool drop = false;
    for (const char* prefix : kDroppedEnvPrefixes) drop = drop || starts_with(*e, prefix);
    if (!drop) s->envp[n++] = *e;
  }
  s->envp[n] = nullptr;
}

// Collects the symbolizer's answers line by line and files them under the
// frames in the order they were asked.
class AnswerParser {
 public:
  AnswerParser(Scratch* s, Protocol protocol, const std::uint16_t* order, std::size_t count)
      : s_(s), protocol_(protocol), order_(order), count_(count) {}

  void feed(const char* data, std::size_t len) noexcept {
    for (std::size_t i = 0; i < len; ++i) {
      const char c = data[i];
      if (c == '\n') {
        s_->line[line_len_] = '\0';
        on_line(s_->line, line_len_);
        line_len_ = 0;
      } else if (line_len_ + 1 < kLineCap) {
        s_->line[line_len_++] = c;
      }
    }
  }

  // True once every asked frame has its answer.
  bool complete() const noexcept { return next_ >= count_; }
  std::size_t answered() const noexcept { return answered_; }

 private:
  void on_line(const char* line, std::size_t len) noexcept {
    if (next_ >= count_) return;
    Frame& frame = s_->frames[order_[next_]];
    if (!expect_location_) {
      if (len == 0) {
        // llvm-symbolizer ends each address's block with an empty line.
        if (lines_in_block_ > 0) finish_frame(frame);
        return;
      }
      ++lines_in_block_;
      pending_ = nullptr;
      if (s_->result_count < kMaxResults) {
        if (frame.result_count == 0) {
          frame.first_result = static_cast<std::uint16_t>(s_->result_count);
        }
        pending_ = &s_->results[s_->result_count++];
        ++frame.result_count;
        set_function(pending_, line, len);
        pending_->location[0] = '\0';
      }
      expect_location_ = true;
      return;
    }
    if (pending_ != nullptr) set_location(pending_, line, len);
    expect_location_ = false;
    // addr2line (without -i) answers each address with exactly two lines.
    if (protocol_ == Protocol::kAddr2line) finish_frame(frame);
  }

  void finish_frame(Frame& frame) noexcept {
    frame.answered = true;
    lines_in_block_ = 0;
    ++answered_;
    ++next_;
  }

  static bool unknown(const char* line, std::size_t len) noexcept {
    return len >= 2 && line[0] == '?' && line[1] == '?';
  }

  static void set_function(Result* r, const char* line, std::size_t len) noexcept {
    bounded_copy(r->function, kTextCap, line, unknown(line, len) ? 0 : len);
  }

  // "file:line:col" (llvm) or "file:line (discriminator N)" (addr2line)
  // becomes "file:line"; unknown locations ("??:0:0", "??:?", "f.c:0")
  // become "".
  static void set_location(Result* r, const char* line, std::size_t len) noexcept {
    if (unknown(line, len)) len = 0;
    if (const char* space = static_cast<const char*>(std::memchr(line, ' ', len));
        space != nullptr && starts_with(space, " (discriminator")) {
      len = static_cast<std::size_t>(space - line);
    }
    const char* last = find_last_colon(line, len);
    if (last != nullptr && is_digits(last + 1, line + len)) {
      const char* prev = find_last_colon(line, static_cast<std::size_t>(last - line));
      if (prev != nullptr && is_digits(prev + 1, last)) {
        len = static_cast<std::size_t>(last - line);  // drop the column
        last = prev;
      }
      if (line + len - last == 2 && last[1] == '0') len = 0;  // line 0: no line info
    }
    bounded_copy(r->location, kTextCap, line, len);
  }

  static const char* find_last_colon(const char* line, std::size_t len) noexcept {
    for (std::size_t i = len; i > 0; --i) {
      if (line[i - 1] == ':') return line + i - 1;
    }
    return nullptr;
  }

  Scratch* s_;
  Protocol protocol_;
  const std::uint16_t* order_;
  std::size_t count_;
  std::size_t next_ = 0;
  std::size_t answered_ = 0;
  std::size_t line_len_ = 0;
  std::size_t lines_in_block_ = 0;
  bool expect_location_ = false;
  Result* pending_ = nullptr;
};

// Sends `input` to the symbolizer at `path` and feeds its output to `parser`
// until it closes its output or `deadline_ms` passes. Returns false if the
// child could not be started. The child is always reaped before returning.
bool run_symbolizer(Scratch* s, const char* path, char* const* argv, const char* input,
                    std::size_t input_len, AnswerParser* parser,
                    std::int64_t deadline_ms) noexcept {
  // A socket for the child's stdin so that writing after it died is EPIPE
  // with MSG_NOSIGNAL, not a SIGPIPE that would kill the reporting process.
  int in_pair[2] = {-1, -1};
  int out_pipe[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) return false;
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    close_fd(in_pair[0]);
    close_fd(in_pair[1]);
    return false;
  }
  int to_child = in_pair[0];
  int child_in = above_stdio(in_pair[1]);
  int from_child = out_pipe[0];
  int child_out = above_stdio(out_pipe[1]);
  int devnull = above_stdio(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  if (child_in < 0 || child_out < 0) {
    close_fd(to_child);
    close_fd(child_in);
    close_fd(from_child);
    close_fd(child_out);
    close_fd(devnull);
    return false;
  }

  ChildArgs args{path, argv, s->envp, child_in, child_out, devnull};
  // All signals stay blocked from before clone until the child has reset its
  // handlers, so none of our handlers can run on the child's side.
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::clone(child_main, s->child_stack + kChildStackBytes,
                            CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close_fd(child_in);
  close_fd(child_out);
  close_fd(devnull);
  if (pid < 0) {
    close_fd(to_child);
    close_fd(from_child);
    return false;
  }

  ::fcntl(to_child, F_SETFL, O_NONBLOCK);
  ::fcntl(from_child, F_SETFL, O_NONBLOCK);
  std::size_t sent = 0;
  if (input_len == 0) close_fd(to_child);
  bool timed_out = false;
  char buf[4096];
  while (from_child >= 0) {
    const std::int64_t left = deadline_ms - now_ms();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd fds[2];
    nfds_t nfds = 0;
    fds[nfds++] = pollfd{from_child, POLLIN, 0};
    if (to_child >= 0) fds[nfds++] = pollfd{to_child, POLLOUT, 0};
    const int ready = ::poll(fds, nfds, static_cast<int>(left));
    if (ready < 0 && errno != EINTR) {
      timed_out = true;  // cannot wait properly: give up on the child
      break;
    }
    if (ready <= 0) continue;
    if (nfds == 2 && fds[1].revents != 0) {
      const ssize_t w =
          ::send(to_child, input + sent, input_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) sent += static_cast<std::size_t>(w);
      // EOF tells the symbolizer there is no more to do; on EPIPE it is gone.
      if (sent == input_len || (w < 0 && errno != EAGAIN && errno != EINTR)) close_fd(to_child);
    }
    if (fds[0].revents != 0) {
      const ssize_t r = ::read(from_child, buf, sizeof(buf));
      if (r > 0) {
        parser->feed(buf, static_cast<std::size_t>(r));
        if (parser->complete()) break;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        break;
      }
    }
  }
  close_fd(to_child);
  close_fd(from_child);

  // Reap. A symbolizer that answered everything exits at stdin EOF at once;
  // one that does not within the deadline (or already timed out) is killed.
  int status = 0;
  if (!timed_out) {
    for (;;) {
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && errno != EINTR)) return true;
      if (now_ms() >= deadline_ms) break;
      ::poll(nullptr, 0, 1);
    }
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return true;
}

Protocol protocol_for(const char* path) noexcept {
  const char* base = std::strrchr(path, '/');
  base = base == nullptr ? path : base + 1;
  return std::strstr(base, "addr2line") != nullptr ? Protocol::kAddr2line : Protocol::kLlvm;
}

}  // namespace

bool executable(const char* path) noexcept {
  return ::access(path, X_OK) == 0;
}

namespace {

// One llvm-symbolizer run for every frame with a module file: input lines are
// `CODE "<module>" 0x<file address>`. Returns the number of frames answered,
// or -1 if it could not run.
long symbolize_llvm(Scratch* s, const char* path, std::int64_t deadline_ms) noexcept {
  std::uint16_t order[kMaxFrames];
  std::size_t count = 0;
  Appender in{s->input, kInputCap, 0};
  for (std::size_t i = 0; i < s->frame_count; ++i) {
    const Frame& f = s->frames[i];
    if (f.answered || f.module == kNoModule) continue;
    const Module& m = s->modules[f.module];
    if (!m.symbolizable || std::strpbrk(m.path, "\"\n") != nullptr) continue;
    const std::size_t mark = in.len;
    if (!(in.str("CODE \"") && in.str(m.path) && in.str("\" ") && in.hex(f.lookup - m.bias) &&
          in.str("\n"))) {
      in.len = mark;
      break;
    }
    order[count++] = static_cast<std::uint16_t>(i);
  }
  if (count == 0) return 0;
  char* argv[] = {const_cast<char*>(path),
                  const_cast<char*>("--inlines"),
                  const_cast<char*>("--demangle"),
                  const_cast<char*>("--functions=linkage"),
                  const_cast<char*>("--output-style=LLVM"),
                  nullptr};
  AnswerParser parser(s, Protocol::kLlvm, order, count);
  if (!run_symbolizer(s, path, argv, s->input, in.len, &parser, deadline_ms)) return -1;
  return static_cast<long>(parser.answered());
}

// addr2line takes one module per run: one run per module, in frame order,
// while the deadline allows. Returns frames answered, or -1 if nothing ran.
long symbolize_addr2line(Scratch* s, const char* path, std::int64_t deadline_ms) noexcept {
  long total = -1;
  for (std::size_t mi = 0; mi < s->module_count; ++mi) {
    const Module& m = s->modules[mi];
    if (!m.symbolizable || now_ms() >= deadline_ms) continue;
    std::uint16_t order[kMaxFrames];
    std::size_t count = 0;
    Appender in{s->input, kInputCap, 0};
    for (std::size_t i = 0; i < s->frame_count; ++i) {
      const Frame& f = s->frames[i];
      if (f.answered || f.module != static_cast<int>(mi)) continue;
      const std::size_t mark = in.len;
      if (!(in.hex(f.lookup - m.bias) && in.str("\n"))) {
        in.len = mark;
        break;
      }
      order[count++] = static_cast<std::uint16_t>(i);
    }
    if (count == 0) continue;
    char* argv[] = {const_cast<char*>(path), const_cast<char*>("-f"),   const_cast<char*>("-C"),
                    const_cast<char*>("-e"), const_cast<char*>(m.path), nullptr};
    AnswerParser parser(s, Protocol::kAddr2line, order, count);
    if (!run_symbolizer(s, path, argv, s->input, in.len, &parser, deadline_ms)) return total;
    total = (total < 0 ? 0 : total) + static_cast<long>(parser.answered());
  }
  return total;
}

long symbolize_with(Scratch* s, const char* path, std::int64_t deadline_ms) noexcept {
  return protocol_for(path) == Protocol::kAddr2line ? symbolize_addr2line(s, path, deadline_ms)
                                                    : symbolize_llvm(s, path, deadline_ms);
}

}  // namespace

void symbolize(Scratch* s, const SymbolizerConfig& config) noexcept {
  if (config.path != nullptr && config.path[0] == '\0') return;
  // The one place a child is started. In a secure-execution process it would
  // run with the program's privileges, in an environment and (through
  // symbolizer_path) from a file its less privileged caller chose.
  if (os::secure_execution()) return;
  const int timeout = config.timeout_ms > 0 ? config.timeout_ms : kDefaultSymbolizerTimeoutMs;
  const std::int64_t deadline = now_ms() + timeout;
  build_env(s);
  if (config.path != nullptr) {
    symbolize_with(s, config.path, deadline);
    return;
  }
  // Automatic: the first candidate that runs and answers anything wins; a
  // candidate that cannot start or answers nothing (a broken install) hands
  // over to the next while time remains.
  for (const char* candidate : kAutoCandidates) {
    if (now_ms() >= deadline) return;
    if (!executable(candidate)) continue;
    if (symbolize_with(s, candidate, deadline) > 0) return;
  }
}

}  // namespace guardarena::report::symbolizer_detail
