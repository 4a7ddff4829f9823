// The A64 decoder that names READ or WRITE for a fault when the signal frame
// has no syndrome, checked on encodings of each load/store class.
#include <gtest/gtest.h>

#include "report/a64_access.h"

namespace guardarena::report {
namespace {

TEST(A64AccessTest, SingleRegisterLoadsAndStores) {
  EXPECT_EQ(a64_access(0x39010001), Access::kWrite);  // strb w1, [x0, #64]
  EXPECT_EQ(a64_access(0x39410001), Access::kRead);   // ldrb w1, [x0, #64]
  EXPECT_EQ(a64_access(0xf8226820), Access::kWrite);  // str x0, [x1, x2]
  EXPECT_EQ(a64_access(0xf8626820), Access::kRead);   // ldr x0, [x1, x2]
  EXPECT_EQ(a64_access(0xb81fc020), Access::kWrite);  // stur w0, [x1, #-4]
  EXPECT_EQ(a64_access(0xb85fc020), Access::kRead);   // ldur w0, [x1, #-4]
}

TEST(A64AccessTest, PairsVectorsAndExclusives) {
  EXPECT_EQ(a64_access(0xa90107e0), Access::kWrite);  // stp x0, x1, [sp, #16]
  EXPECT_EQ(a64_access(0xa94107e0), Access::kRead);   // ldp x0, x1, [sp, #16]
  EXPECT_EQ(a64_access(0x3d800000), Access::kWrite);  // str q0, [x0]
  EXPECT_EQ(a64_access(0x3dc00000), Access::kRead);   // ldr q0, [x0]
  EXPECT_EQ(a64_access(0x88027c20), Access::kWrite);  // stxr w2, w0, [x1]
  EXPECT_EQ(a64_access(0x885f7c20), Access::kRead);   // ldxr w0, [x1]
}

TEST(A64AccessTest, AtomicsWriteAndOtherInstructionsAreUnknown) {
  EXPECT_EQ(a64_access(0xb8210002), Access::kWrite);    // ldadd w1, w2, [x0]
  EXPECT_EQ(a64_access(0xb8218002), Access::kWrite);    // swp w1, w2, [x0]
  EXPECT_EQ(a64_access(0xb8610002), Access::kWrite);    // ldaddl w1, w2, [x0] (bit 22: release)
  EXPECT_EQ(a64_access(0x91000400), Access::kUnknown);  // add x0, x0, #1
  EXPECT_EQ(a64_access(0xd65f03c0), Access::kUnknown);  // ret
}

}  // namespace
}  // namespace guardarena::report
