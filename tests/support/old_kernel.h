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

}  // namespace guardarena::testing
