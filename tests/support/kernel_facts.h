// What the running kernel offers, decided without the library under test:
// each fact is read twice, from the kernel version (uname) and from a direct
// system call on a scratch mapping, and a test that depends on it fails when
// the two disagree (a probe that lies, or a kernel that is not what its
// version says) instead of skipping. Test-only.
#pragma once

#include <string>

namespace guardarena::testing {

struct KernelFact {
  bool by_version = false;  // the release the feature appeared in, or later
  bool by_probe = false;    // the direct call worked and did what it should
  // The call succeeded and did nothing: an emulator (qemu-user) or a sandbox
  // between the program and the kernel, whose version then says nothing.
  bool ignored = false;
  std::string detail;  // what the probe saw, for messages

  bool agree() const { return ignored || by_version == by_probe; }
  bool present() const { return by_version && by_probe; }
  std::string describe() const;
};

// MADV_GUARD_INSTALL/REMOVE (Linux 6.13): installing on a touched page makes
// it fault (a write(2) from it fails with EFAULT), removing makes it readable
// again.
const KernelFact& guard_markers();

// process_madvise(PIDFD_SELF, MADV_GUARD_REMOVE) (Linux 6.15): one call
// removes the marker of a scratch page.
const KernelFact& batched_guard_remove();

// For SetUp() and test bodies: records a failure when version and probe
// disagree about guard markers, and returns whether they are here. Skip
// with kNoGuardMarkers when it returns false.
bool guard_markers_here();
inline constexpr const char* kNoGuardMarkers =
    "no working MADV_GUARD_INSTALL here (Linux 6.13+, not accepted-and-ignored as under "
    "qemu-user)";

}  // namespace guardarena::testing
