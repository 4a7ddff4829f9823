// Counting a child's system calls as the kernel sees them, for tests that
// bound how many syscalls (or page faults) an operation costs. The library's
// own counter only counts the calls it chooses to count; these counts come
// from ptrace (every syscall entry of every thread of the child) and from a
// perf software event (page faults taken by the child's instructions), so a
// stray syscall anywhere in a hot path shows up. Test-only: forks, allocates, and may not be used
// from a child.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace guardarena::testing {

// The window a TracedRun counts: the child calls begin_counting() and
// end_counting() (two syscall numbers no kernel implements, which the tracer
// recognises and leaves out of the count). Without begin_counting(), the
// whole life of the child counts.
void begin_counting() noexcept;
void end_counting() noexcept;

struct TracedRun {
  bool traced = false;                      // false: ptrace is not permitted here (see why_not)
  std::string why_not;                      // the reason, for the test's skip message
  int status = -1;                          // waitpid status of the child
  std::uint64_t syscalls = 0;               // entries inside the window
  std::map<long, std::uint64_t> by_number;  // the same, per syscall number
  bool faults_counted = false;              // perf_event_open worked in the child
  std::uint64_t minor_faults = 0;           // page faults the child's code took inside the window
  std::string out;                          // what the child wrote to the pipe (child_write)

  bool exited_ok() const;
  std::uint64_t count(long number) const;
  std::string describe() const;  // status and the per-syscall counts, for failure messages
};

// Runs body() in a forked child traced with PTRACE_O_TRACESYSGOOD and
// PTRACE_SYSCALL (threads followed through PTRACE_O_TRACECLONE); the child
// exits with body's return value. body must not use gtest assertions: it
// reports through its exit status and child_write().
TracedRun trace_child(const std::function<int()>& body);

// Runs argv[0] (a path) with the given environment under the same tracer.
TracedRun trace_program(const std::vector<std::string>& argv, const std::vector<std::string>& env);

// For body(): appends text to TracedRun::out (async-signal-safe, no malloc).
void child_write(const char* text) noexcept;

// Whether this process may trace a forked child at all; the reason if not.
bool ptrace_permitted(std::string* why_not);

// The running kernel's version from uname(2), e.g. {6, 18}.
struct KernelVersion {
  int major = 0;
  int minor = 0;
  bool at_least(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};
KernelVersion kernel_version();

}  // namespace guardarena::testing
