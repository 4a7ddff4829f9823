#include "support/old_kernel.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace guardarena::testing {
namespace {

#if defined(__x86_64__)
constexpr unsigned kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kArch = AUDIT_ARCH_AARCH64;
#else
#error "old_kernel.cpp: add this architecture's AUDIT_ARCH value"
#endif

constexpr unsigned kMadvGuardInstall = 102;
constexpr unsigned kMadvGuardRemove = 103;
constexpr unsigned kFailWithEinval = SECCOMP_RET_ERRNO | (EINVAL & SECCOMP_RET_DATA);
// RET_ERRNO with 0: the call returns 0 without running.
constexpr unsigned kSucceedWithoutRunning = SECCOMP_RET_ERRNO | 0;

// A filter's first four instructions: other architectures' calls run, and
// the accumulator holds the call's number.
#define LOAD_SYSCALL_NUMBER                                         \
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)), \
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),             \
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                 \
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr))

// Installs a seccomp filter in the calling process (inherited by its children).
bool install(sock_filter* filter, std::size_t n, std::string* why_not) noexcept {
  sock_fprog prog{static_cast<unsigned short>(n), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    if (why_not != nullptr) *why_not = std::string("seccomp refused: ") + std::strerror(errno);
    return false;
  }
  return true;
}

// Answers madvise(MADV_GUARD_INSTALL / MADV_GUARD_REMOVE) and process_madvise
// with `action`; everything else runs.
bool filter_guard_advice(unsigned action, std::string* why_not) noexcept {
  // args[2] (the advice) is read as its low 32 bits: little-endian layout.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
  sock_filter filter[] = {
      LOAD_SYSCALL_NUMBER,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_madvise, 5, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[2])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kMadvGuardInstall, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kMadvGuardRemove, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, action),
  };
  return install(filter, sizeof filter / sizeof filter[0], why_not);
}

}  // namespace

bool refuse_process_vm_readv(std::string* why_not) noexcept {
  sock_filter filter[] = {
      LOAD_SYSCALL_NUMBER,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
  return install(filter, sizeof filter / sizeof filter[0], why_not);
}

bool hide_guard_markers(std::string* why_not) noexcept {
  return filter_guard_advice(kFailWithEinval, why_not);
}

bool fake_guard_markers(std::string* why_not) noexcept {
  return filter_guard_advice(kSucceedWithoutRunning, why_not);
}

bool can_fake_guard_markers(std::string* why_not) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fake_guard_markers(nullptr) ? 0 : 1);
  int status = 0;
  const bool ok =
      pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok && why_not != nullptr)
    *why_not = "no seccomp filters here (an emulator such as qemu-user does not model them)";
  return ok;
}

}  // namespace guardarena::testing
