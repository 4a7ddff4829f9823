// core/registry.h: the fixed, lock-free registry of arenas.
#include "core/registry.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace guardarena {
namespace {

struct Span {
  int lo, hi;
  bool owns(int x) const { return x >= lo && x < hi; }
};

TEST(RegistryTest, FindsWhatWasAddedUntilRemoved) {
  Registry<Span, 4> r;
  Span a{0, 10}, b{10, 20};
  ASSERT_TRUE(r.add(&a));
  ASSERT_TRUE(r.add(&b));
  EXPECT_TRUE(r.contains(&a));
  EXPECT_EQ(r.find([](const Span& s) { return s.owns(15); }), &b);
  EXPECT_TRUE(r.remove(&b));
  EXPECT_FALSE(r.contains(&b));
  EXPECT_EQ(r.find([](const Span& s) { return s.owns(15); }), nullptr);
  EXPECT_FALSE(r.remove(&b)) << "removed twice";
}

TEST(RegistryTest, RefusesPastCapacityAndReusesFreedPlaces) {
  Registry<Span, 2> r;
  Span a{}, b{}, c{};
  ASSERT_TRUE(r.add(&a));
  ASSERT_TRUE(r.add(&b));
  EXPECT_FALSE(r.add(&c));
  EXPECT_FALSE(r.contains(&c));
  ASSERT_TRUE(r.remove(&a));
  EXPECT_TRUE(r.add(&c));
  EXPECT_TRUE(r.contains(&c));
}

TEST(RegistryTest, ConcurrentAddsAndRemovesKeepEveryMemberFindable) {
  Registry<Span, 64> r;
  Span fixed{1000, 1001};
  ASSERT_TRUE(r.add(&fixed));
  std::vector<Span> spans(8);
  std::vector<std::thread> threads;
  for (auto& s : spans) {
    threads.emplace_back([&r, &s] {
      for (int i = 0; i < 20000; ++i) {
        ASSERT_TRUE(r.add(&s));
        ASSERT_TRUE(r.contains(&s));
        ASSERT_TRUE(r.remove(&s));
      }
    });
  }
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(r.contains(&fixed));
  for (auto& t : threads) t.join();
  for (auto& s : spans) EXPECT_FALSE(r.contains(&s));
}

}  // namespace
}  // namespace guardarena
