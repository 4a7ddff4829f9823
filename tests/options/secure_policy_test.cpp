// The secure-execution policy over the option table: what a set-user-ID
// program keeps of the options its caller set.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "options/options.h"
#include "os/raw_writer.h"

namespace guardarena {
namespace {

struct Applied {
  std::size_t count;
  std::string names;
};

Applied apply(Options& o) {
  char buf[1024];
  RawWriter w(buf, sizeof buf);
  std::size_t n = apply_secure_policy(o, w);
  return {n, std::string(buf, w.size())};
}

Options parsed(const char* text) {
  Options o;
  char error[256];
  EXPECT_TRUE(parse_options(text, o, error, sizeof error)) << error;
  return o;
}

TEST(SecurePolicyTest, DefaultsAreLeftAloneAndNothingIsNamed) {
  Options o;
  Applied a = apply(o);
  EXPECT_EQ(a.count, 0u);
  EXPECT_EQ(a.names, "");
}

TEST(SecurePolicyTest, PathsAndOutputOptionsReturnToTheirDefaults) {
  Options o = parsed("log_path=/tmp/x:symbolizer_path=/tmp/y:print_stats=1:detect_leaks=1");
  Applied a = apply(o);
  EXPECT_EQ(a.count, 4u);
  EXPECT_EQ(a.names, "log_path, symbolizer_path, detect_leaks, print_stats");
  EXPECT_TRUE(o.log_path.empty());
  EXPECT_TRUE(o.symbolizer_path.empty());
  EXPECT_FALSE(o.print_stats);
  EXPECT_FALSE(o.detect_leaks);
}

TEST(SecurePolicyTest, LimitsMayBeLoweredButNotRaised) {
  const Options defaults;
  Options o = parsed("quarantine_bytes=1M:reserve_size=1T:depot_size=1G:stack_depth=8");
  Applied a = apply(o);
  EXPECT_EQ(a.names, "reserve_size, depot_size");
  EXPECT_EQ(o.quarantine_bytes, 1u << 20);
  EXPECT_EQ(o.stack_depth, 8u);
  EXPECT_EQ(o.reserve_size, defaults.reserve_size);
  EXPECT_EQ(o.depot_size, defaults.depot_size);
}

// A caller may lower the memory budget of a privileged process, never lift
// it: 0 (no budget) goes back to auto. (A value above auto's answer is cut
// when auto is resolved: core/memory_budget_test.cpp.)
TEST(SecurePolicyTest, MemoryBudgetCanBeLoweredNotLifted) {
  Options lowered = parsed("max_guarded_memory=32M");
  EXPECT_EQ(apply(lowered).count, 0u);
  EXPECT_EQ(lowered.max_guarded_memory, 32u << 20);
  Options lifted = parsed("max_guarded_memory=0");
  Applied a = apply(lifted);
  EXPECT_EQ(a.names, "max_guarded_memory");
  EXPECT_EQ(lifted.max_guarded_memory, kAutoBudget);
}

TEST(SecurePolicyTest, WhatOnlyNarrowsDetectionIsKept) {
  Options o =
      parsed("mode=fast:backend=mprotect:protect_below=1:sample_rate=100:report_format=json");
  Applied a = apply(o);
  EXPECT_EQ(a.count, 0u) << a.names;
  EXPECT_EQ(o.mode, Mode::kFast);
  EXPECT_EQ(o.backend, Backend::kMprotect);
  EXPECT_TRUE(o.protect_below);
  EXPECT_EQ(o.sample_rate, 100u);
}

// A path or a program in a caller's hands is never safe in a privileged
// process: every text option must be dropped there.
TEST(SecurePolicyTest, EveryTextOptionIsDropped) {
  const OptionInfo* table = option_table();
  for (std::size_t i = 0; i < kOptionCount; ++i) {
    if (std::strcmp(table[i].kind, "Text") == 0) {
      EXPECT_EQ(secure_policy(i), SecurePolicy::kDrop) << table[i].name;
    }
  }
}

}  // namespace
}  // namespace guardarena
