// The guard-marker probe must prove that a guard traps, not only that the
// kernel accepted the advice: a layer that answers success and installs
// nothing (an emulator, a sandbox) is simulated with a seccomp filter.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "os/os_linux.h"
#include "support/old_kernel.h"

namespace guardarena::os {
namespace {

TEST(GuardProbeTest, AdviceAcceptedButIgnoredIsNotTrusted) {
  if (std::string why; !testing::can_fake_guard_markers(&why)) GTEST_SKIP() << why;
  // In a child: the filter cannot be removed, and the probe's answer is cached.
  EXPECT_EXIT(
      {
        if (!testing::fake_guard_markers(nullptr)) std::_Exit(3);
        const GuardSupport s = guard_support();
        std::_Exit(s == GuardSupport::kIgnored && !guard_regions_supported() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(GuardProbeTest, NamesEveryAnswer) {
  EXPECT_STREQ(guard_support_name(GuardSupport::kWorks), "works");
  EXPECT_STREQ(guard_support_name(GuardSupport::kIgnored), "accepted but not enforced");
  EXPECT_STREQ(guard_support_name(GuardSupport::kAbsent), "absent");
}

}  // namespace
}  // namespace guardarena::os
