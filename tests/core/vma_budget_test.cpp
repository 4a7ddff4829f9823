// core/vma_budget.h: the mprotect backend's process-wide mapping budget.
#include "core/vma_budget.h"

#include <gtest/gtest.h>

namespace guardarena {
namespace {

TEST(VmaBudgetTest, LimitIsHalfOfWhatIsLeft) {
  // Each open region costs two mappings.
  EXPECT_EQ(vma_region_limit(65530, 530, 1000), 32000);
  EXPECT_EQ(vma_region_limit(100, 90, 20), 0) << "never negative";
}

TEST(VmaBudgetTest, OpensAndClosesAreCountedPerArenaAndProcessWide) {
  VmaBudget a, b;
  a.init(0);
  const std::int64_t before = VmaBudget::process_open();
  ASSERT_TRUE(a.try_open(0));
  ASSERT_TRUE(a.try_open(0));
  ASSERT_TRUE(b.try_open(0));
  EXPECT_EQ(a.open(), 2);
  EXPECT_EQ(b.open(), 1);
  EXPECT_EQ(VmaBudget::process_open(), before + 3);
  a.closed();
  EXPECT_EQ(a.open(), 1);
  a.close_all();
  EXPECT_EQ(a.open(), 0);
  EXPECT_EQ(VmaBudget::process_open(), before + 1);
  b.close_all();
  EXPECT_EQ(VmaBudget::process_open(), before);
}

}  // namespace
}  // namespace guardarena
