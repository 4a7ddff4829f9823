// The memory budget's arithmetic (what max_guarded_memory resolves to, the
// process-wide count it bounds) and the rationing policy that follows a
// refusal, without an arena.
#include "core/memory_budget.h"

#include <gtest/gtest.h>

#include "core/guard_rationing.h"
#include "options/options.h"

namespace guardarena {
namespace {

constexpr os::MemoryLimit kCgroup2G{2ull << 30, os::MemoryLimitSource::kCgroup};
constexpr os::MemoryLimit kPhysical16G{16ull << 30, os::MemoryLimitSource::kPhysical};

TEST(ResolveBudgetTest, AutoIsHalfOfTheLimitAndNamesItsSource) {
  BudgetConfig c = resolve_budget(kAutoBudget, false, kCgroup2G);
  EXPECT_EQ(c.bytes, 1ull << 30);
  EXPECT_EQ(c.source, BudgetSource::kCgroup);
  c = resolve_budget(kAutoBudget, false, kPhysical16G);
  EXPECT_EQ(c.bytes, 8ull << 30);
  EXPECT_EQ(c.source, BudgetSource::kPhysical);
}

TEST(ResolveBudgetTest, ZeroIsNoBudgetAndAValueIsItself) {
  EXPECT_EQ(resolve_budget(0, false, kCgroup2G).bytes, 0u);
  EXPECT_EQ(resolve_budget(0, false, kCgroup2G).source, BudgetSource::kNone);
  BudgetConfig c = resolve_budget(32ull << 20, false, kCgroup2G);
  EXPECT_EQ(c.bytes, 32ull << 20);
  EXPECT_EQ(c.source, BudgetSource::kOption);
  // Outside secure execution a user may ask for more than auto would give.
  EXPECT_EQ(resolve_budget(4ull << 30, false, kCgroup2G).bytes, 4ull << 30);
}

TEST(ResolveBudgetTest, SecureExecutionLowersButNeverRaises) {
  EXPECT_EQ(resolve_budget(32ull << 20, true, kCgroup2G).bytes, 32ull << 20);
  const BudgetConfig c = resolve_budget(4ull << 30, true, kCgroup2G);
  EXPECT_EQ(c.bytes, 1ull << 30);
  EXPECT_EQ(c.source, BudgetSource::kCgroup);
}

TEST(ResolveBudgetTest, SourceNames) {
  EXPECT_STREQ(budget_source_name(BudgetSource::kNone), "none");
  EXPECT_STREQ(budget_source_name(BudgetSource::kOption), "option");
  EXPECT_STREQ(budget_source_name(BudgetSource::kCgroup), "cgroup");
  EXPECT_STREQ(budget_source_name(BudgetSource::kPhysical), "physical");
}

TEST(BudgetAccountingTest, ChargesUpToTheLimitOfTheProcessWideTotal) {
  const std::uint64_t before = MemoryBudget::process_resident();
  MemoryBudget a;
  a.init(before + (1u << 20));
  EXPECT_TRUE(a.try_charge(512u << 10));
  EXPECT_TRUE(a.try_charge(512u << 10));
  EXPECT_FALSE(a.try_charge(1));
  EXPECT_EQ(MemoryBudget::process_resident(), before + (1u << 20));
  EXPECT_GE(MemoryBudget::process_peak(), before + (1u << 20));
  a.uncharge(4096);
  EXPECT_TRUE(a.try_charge(4096));
  a.uncharge_all();
  EXPECT_EQ(MemoryBudget::process_resident(), before);
}

TEST(BudgetAccountingTest, ArenasShareOneTotal) {
  const std::uint64_t before = MemoryBudget::process_resident();
  MemoryBudget unbounded;
  unbounded.init(0);
  MemoryBudget small;
  small.init(before + (1u << 20));
  EXPECT_TRUE(unbounded.try_charge(1u << 20));
  // The other arena's pages count against this one's limit.
  EXPECT_FALSE(small.try_charge(4096));
  unbounded.uncharge_all();
  EXPECT_TRUE(small.try_charge(4096));
  small.uncharge_all();
}

TEST(BudgetAccountingTest, RoomMeansBelowThreeQuarters) {
  const std::uint64_t before = MemoryBudget::process_resident();
  MemoryBudget b;
  b.init(before + (4u << 20));
  EXPECT_TRUE(b.has_room());
  ASSERT_TRUE(b.try_charge(3u << 20));
  EXPECT_FALSE(b.has_room());
  b.uncharge(1);
  EXPECT_TRUE(b.has_room());
  b.uncharge_all();
  MemoryBudget none;
  none.init(0);
  EXPECT_TRUE(none.has_room());
}

TEST(GuardRationingTest, RefusalsDoubleTheRateUpToItsMaximum) {
  GuardRationing r;
  EXPECT_FALSE(r.active());
  EXPECT_EQ(r.rate(), 1u);
  EXPECT_EQ(r.refused(), 2u);
  EXPECT_TRUE(r.active());
  EXPECT_EQ(r.refused(), 4u);
  for (int i = 0; i < 64; ++i) r.refused();
  EXPECT_EQ(r.rate(), GuardRationing::kMaxRate);
}

TEST(GuardRationingTest, EasingHalvesTheRateBackToOne) {
  GuardRationing r;
  r.refused();
  r.refused();
  r.eased();
  EXPECT_EQ(r.rate(), 2u);
  r.eased();
  EXPECT_EQ(r.rate(), 1u);
  EXPECT_FALSE(r.active());
  r.eased();
  EXPECT_EQ(r.rate(), 1u);
}

TEST(GuardRationingTest, DrawsAboutOneInRate) {
  GuardRationing r;
  for (int i = 0; i < 3; ++i) r.refused();  // 1 in 8
  int drawn = 0;
  for (int i = 0; i < 80000; ++i) drawn += r.draw() ? 1 : 0;
  EXPECT_GT(drawn, 8000);
  EXPECT_LT(drawn, 12000);
}

TEST(GuardRationingTest, ResetStartsOver) {
  GuardRationing r;
  r.refused();
  r.count_unguarded();
  EXPECT_EQ(r.unguarded(), 1u);
  r.reset();
  EXPECT_EQ(r.rate(), 1u);
  EXPECT_EQ(r.unguarded(), 0u);
}

}  // namespace
}  // namespace guardarena
