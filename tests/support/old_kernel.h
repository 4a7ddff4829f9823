// An older kernel, simulated for one process: a seccomp filter makes
// madvise(MADV_GUARD_INSTALL / MADV_GUARD_REMOVE) and process_madvise fail
// with EINVAL, as on Linux before 6.13, so what the library does on such a
// kernel can be tested here without a seam in the library. The filter is
// inherited across fork and exec. Test-only.
#pragma once

#include <string>

namespace guardarena::testing {

// Installs the filter in the calling process (a child about to run the code
// under test). Returns false, with the reason, when seccomp is refused.
bool hide_guard_markers(std::string* why_not) noexcept;

// A kernel (or an emulator, or a sandbox) that accepts the guard advices and
// installs nothing: the same calls return success without running.
bool fake_guard_markers(std::string* why_not) noexcept;

// A sandbox that refuses process_vm_readv with EPERM, as container runtimes'
// default seccomp profiles did (the leak scan then reads through a pipe).
bool refuse_process_vm_readv(std::string* why_not) noexcept;

// Whether seccomp filters, and so fake_guard_markers(),
// hide_guard_markers() and refuse_process_vm_readv(), work here: tried in a
// throwaway child.
bool can_fake_guard_markers(std::string* why_not);

}  // namespace guardarena::testing
