// The guard-marker probe must prove that a guard traps, not only that the
// kernel accepted the advice: a layer that answers success and installs
// nothing (an emulator, a sandbox) is simulated with a seccomp filter.
#include <gtest/gtest.h>

#include <cstdlib>

#include "os/os_linux.h"
#include "support/ignore_guard_advice.h"

namespace guardarena::os {
namespace {

TEST(GuardProbeTest, AdviceAcceptedButIgnoredIsNotTrusted) {
  if (!testing::can_ignore_guard_advice())
    GTEST_SKIP() << "no seccomp filters here (an emulator): the advice cannot be made to lie";
  // In a child: the filter cannot be removed, and the probe's answer is cached.
  EXPECT_EXIT(
      {
        if (!testing::ignore_guard_advice()) std::_Exit(3);
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
