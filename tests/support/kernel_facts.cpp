#include "support/kernel_facts.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "support/syscall_trace.h"

namespace guardarena::testing {
namespace {

// The uapi values, for headers older than the kernel.
constexpr int kMadvGuardInstall = 102;
constexpr int kMadvGuardRemove = 103;
constexpr int kPidfdSelf = -10000;  // PIDFD_SELF_THREAD

// Whether one byte at p can be read by the kernel on our behalf: write(2)
// from a guard page fails with EFAULT instead of killing the process.
bool kernel_can_read(const void* p) {
  int fds[2];
  if (::pipe(fds) != 0) return false;
  ssize_t n = ::write(fds[1], p, 1);
  int err = errno;
  ::close(fds[0]);
  ::close(fds[1]);
  errno = err;
  return n == 1;
}

// One touched read/write page of its own, unmapped with the object.
class ScratchPage {
 public:
  ScratchPage()
      : size_(static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))),
        page_(static_cast<char*>(
            ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))) {
    if (ok()) page_[0] = 1;
  }
  ~ScratchPage() {
    if (ok()) ::munmap(page_, size_);
  }
  ScratchPage(const ScratchPage&) = delete;
  ScratchPage& operator=(const ScratchPage&) = delete;
  bool ok() const { return page_ != MAP_FAILED; }
  char* get() const { return page_; }
  std::size_t size() const { return size_; }
  bool advise(int advice) const { return ::madvise(page_, size_, advice) == 0; }

 private:
  std::size_t size_;
  char* page_;
};

std::string failed(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

KernelFact probe_guard_markers() {
  KernelFact f;
  f.by_version = kernel_version().at_least(6, 13);
  ScratchPage page;
  if (!page.ok()) {
    f.detail = failed("mmap");
  } else if (!page.advise(kMadvGuardInstall)) {
    f.detail = failed("madvise(MADV_GUARD_INSTALL)");
  } else if (kernel_can_read(page.get())) {
    f.detail = "MADV_GUARD_INSTALL succeeded but the page is still readable";
    f.ignored = true;
  } else if (errno != EFAULT) {
    f.detail = failed("reading the guarded page");
  } else if (!page.advise(kMadvGuardRemove)) {
    f.detail = failed("madvise(MADV_GUARD_REMOVE)");
  } else if (!kernel_can_read(page.get())) {
    f.detail = "MADV_GUARD_REMOVE succeeded but the page still faults";
  } else {
    f.by_probe = true;
    f.detail = "install faults the page, remove restores it";
  }
  return f;
}

KernelFact probe_batched_guard_remove() {
  KernelFact f;
  f.by_version = kernel_version().at_least(6, 15);
  // Nothing to batch where the markers themselves are not enforced.
  f.ignored = guard_markers().ignored;
  ScratchPage page;
  iovec iov{page.get(), page.size()};
  if (!page.ok()) {
    f.detail = failed("mmap");
  } else if (!page.advise(kMadvGuardInstall)) {
    f.detail = "no MADV_GUARD_INSTALL to batch";
  } else if (long r = ::syscall(SYS_process_madvise, kPidfdSelf, &iov, 1, kMadvGuardRemove, 0u);
             r != static_cast<long>(page.size())) {
    f.detail = r < 0 ? failed("process_madvise(PIDFD_SELF, MADV_GUARD_REMOVE)")
                     : "process_madvise(PIDFD_SELF, MADV_GUARD_REMOVE): short count";
  } else if (!kernel_can_read(page.get())) {
    f.detail = "process_madvise succeeded but the page still faults";
  } else {
    f.by_probe = true;
    f.detail = "process_madvise(PIDFD_SELF) removed a marker";
  }
  return f;
}

}  // namespace

std::string KernelFact::describe() const {
  KernelVersion v = kernel_version();
  return "kernel " + std::to_string(v.major) + "." + std::to_string(v.minor) +
         " (new enough: " + (by_version ? "yes" : "no") +
         "), direct probe: " + (by_probe ? "works" : "fails") + " (" + detail + ")";
}

const KernelFact& guard_markers() {
  static const KernelFact fact = probe_guard_markers();
  return fact;
}

const KernelFact& batched_guard_remove() {
  static const KernelFact fact = probe_batched_guard_remove();
  return fact;
}

bool guard_markers_here() {
  const KernelFact& f = guard_markers();
  if (!f.agree()) {
    ADD_FAILURE() << "kernel version and a direct madvise disagree about guard markers: "
                  << f.describe();
  }
  return f.present();
}

}  // namespace guardarena::testing
