// Unit tests of preload/init.cpp and preload/sampling.cpp, linked into this binary directly (the
// binary keeps glibc's malloc): the static bootstrap buffer, the lazy
// initialisation with and without `environ`, and the sampler.
#include "init.h"
#include "process_hooks.h"
#include "sampling.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "os/os_linux.h"

extern char** environ;

namespace guardarena::preload {
namespace {

class BootstrapTest : public ::testing::Test {
 protected:
  void SetUp() override { reset_for_testing(); }
  void TearDown() override {
    reset_for_testing();
    ::unsetenv("GUARDARENA_OPTIONS");
  }
};

TEST_F(BootstrapTest, BlocksAreAlignedDistinctZeroedAndRecognised) {
  std::set<std::uintptr_t> seen;
  for (std::size_t i = 0; i < 50; ++i) {
    std::size_t align = std::size_t{1} << (i % 8);
    auto* p = static_cast<unsigned char*>(bootstrap_allocate(i * 3, align));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (align < 16 ? 16 : align), 0u);
    EXPECT_TRUE(is_bootstrap(p));
    EXPECT_EQ(bootstrap_size(p), i * 3);
    for (std::size_t j = 0; j < i * 3; ++j) ASSERT_EQ(p[j], 0);
    std::memset(p, 0xab, i * 3);
    EXPECT_TRUE(seen.insert(reinterpret_cast<std::uintptr_t>(p)).second);
  }
  EXPECT_EQ(bootstrap_count(), 50u);
  int on_stack = 0;
  void* on_heap = std::malloc(8);
  EXPECT_FALSE(is_bootstrap(&on_stack));
  EXPECT_FALSE(is_bootstrap(on_heap));
  EXPECT_FALSE(is_bootstrap(nullptr));
  std::free(on_heap);
}

TEST_F(BootstrapTest, ReturnsNullWhenFull) {
  EXPECT_EQ(bootstrap_allocate(std::size_t{1} << 30, 16), nullptr);
  std::size_t served = 0;
  while (bootstrap_allocate(4096, 16) != nullptr) ++served;
  EXPECT_GT(served, 10u);
  EXPECT_EQ(bootstrap_allocate(4096, 16), nullptr);
}

TEST_F(BootstrapTest, NoArenaBeforeLibcHasSetEnviron) {
  char** saved = environ;
  environ = nullptr;
  Arena* a = arena();
  environ = saved;
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(g_state.load(), InitState::kUninitialised);
}

TEST_F(BootstrapTest, InitialisesOnFirstUseWithTheOptionsFromEnviron) {
  ::setenv("GUARDARENA_OPTIONS", "quarantine_slots=7:sample_rate=3:backend=mprotect", 1);
  Arena* a = arena();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(g_state.load(), InitState::kReady);
  EXPECT_EQ(g_options.quarantine_slots, 7u);
  EXPECT_EQ(g_options.sample_rate, 3u);
  EXPECT_FALSE(g_guard_all);
  EXPECT_STREQ(a->stats().backend, "mprotect");
  EXPECT_EQ(arena(), a);  // once only
}

TEST_F(BootstrapTest, BadOptionsExitWithStatusOneAndOneLine) {
  ::setenv("GUARDARENA_OPTIONS", "sample_rate=often", 1);
  EXPECT_EXIT(arena(), ::testing::ExitedWithCode(1),
              "^guardarena: option 'sample_rate': bad value 'often'[^\n]*\n$");
}

TEST_F(BootstrapTest, SamplerGuardsAboutOneInN) {
  ::setenv("GUARDARENA_OPTIONS", "sample_rate=10", 1);
  ASSERT_NE(arena(), nullptr);
  int guarded = 0;
  for (int i = 0; i < 100000; ++i) guarded += should_guard(64) ? 1 : 0;
  EXPECT_GT(guarded, 8000);
  EXPECT_LT(guarded, 12000);
}

TEST_F(BootstrapTest, SizeBandAndSampleAfter) {
  ::setenv("GUARDARENA_OPTIONS", "min_size=100:max_size=200:sample_after=5", 1);
  ASSERT_NE(arena(), nullptr);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(should_guard(150)) << i;
  EXPECT_TRUE(should_guard(150));
  EXPECT_TRUE(should_guard(100));
  EXPECT_TRUE(should_guard(200));
  EXPECT_FALSE(should_guard(99));
  EXPECT_FALSE(should_guard(201));
}

TEST_F(BootstrapTest, GuardsEverythingByDefault) {
  ASSERT_NE(arena(), nullptr);
  EXPECT_TRUE(g_guard_all);
  EXPECT_TRUE(should_guard(0));
  EXPECT_TRUE(should_guard(std::size_t{1} << 40));
}

TEST_F(BootstrapTest, FastPathOnlyWhenSampleRateAloneDecides) {
  struct Case {
    const char* options;
    bool fast;
  };
  for (Case c :
       {Case{"sample_rate=10", true}, Case{"", false}, Case{"sample_rate=1", false},
        Case{"sample_rate=10:print_stats=1", false}, Case{"sample_rate=10:min_size=8", false},
        Case{"sample_rate=10:max_size=8", false}, Case{"sample_rate=10:sample_after=3", false}}) {
    reset_for_testing();
    ::setenv("GUARDARENA_OPTIONS", c.options, 1);
    ASSERT_NE(arena(), nullptr) << c.options;
    EXPECT_EQ(g_sampling_fast_path.load(), c.fast) << c.options;
  }
}

TEST_F(BootstrapTest, FastPathTakesTheSamplersTurnsButNeverTheGuardedOne) {
  ::setenv("GUARDARENA_OPTIONS", "sample_rate=10", 1);
  ASSERT_NE(arena(), nullptr);
  EXPECT_FALSE(take_unguarded());  // no countdown drawn on this thread yet
  t_countdown = 2;
  EXPECT_TRUE(take_unguarded());
  EXPECT_FALSE(take_unguarded());  // the last turn is the guarded one
  EXPECT_TRUE(should_guard(64));
  EXPECT_FALSE(take_unguarded());  // drawn anew by the slow path only
  int guarded = 0;
  int fast = 0;
  for (int i = 0; i < 100000; ++i) {
    if (take_unguarded()) {
      ++fast;
    } else {
      guarded += should_guard(64) ? 1 : 0;
    }
  }
  EXPECT_GT(guarded, 8000);
  EXPECT_LT(guarded, 12000);
  EXPECT_GT(fast, 80000);
}

TEST_F(BootstrapTest, OnlyGlibcBlocksSkipTheArena) {
  ::setenv("GUARDARENA_OPTIONS", "sample_rate=2", 1);
  void* heap = std::malloc(64);        // this binary's malloc is glibc's
  EXPECT_FALSE(is_glibc_block(heap));  // no arena yet
  Arena* a = arena();
  ASSERT_NE(a, nullptr);
  void* boot = bootstrap_allocate(16, 16);
  void* guarded = a->allocate(64, 16, AllocKind::kMalloc, false);
  ASSERT_TRUE(a->owns(guarded));
  // Nothing was left to glibc yet: a pointer from outside must be reported,
  // so the shortcut stays closed even when asked to open.
  open_free_shortcut();
  EXPECT_FALSE(is_glibc_block(heap));
  g_delegated.store(true);
  EXPECT_FALSE(is_glibc_block(heap));  // opened by the first glibc free on the slow path
  open_free_shortcut();
  EXPECT_TRUE(is_glibc_block(heap));
  EXPECT_FALSE(is_glibc_block(boot));
  EXPECT_FALSE(is_glibc_block(guarded));
  EXPECT_EQ(a->deallocate(guarded, 0, 0, AllocKind::kMalloc), Arena::FreeResult::kFreed);
  std::free(heap);
}

// Exits with the number of the first check that failed, 0 when all passed.
// Runs in a fresh process: the VMA budget is computed once per process, from
// the options of the first arena on the mprotect backend.
[[noreturn]] void check_no_glibc_shortcut_with_fallback_blocks() {
  // No VMA budget at all: guarded allocations become fallback blocks.
  std::string options =
      "backend=mprotect:vma_headroom=" + std::to_string(os::max_map_count() + 1000);
  ::setenv("GUARDARENA_OPTIONS", options.c_str(), 1);
  Arena* a = arena();
  if (a == nullptr) ::_exit(1);
  g_delegated.store(true);
  open_free_shortcut();
  void* heap = std::malloc(64);  // this binary's malloc is glibc's
  if (!is_glibc_block(heap)) ::_exit(2);
  void* fallback = a->allocate(64, 16, AllocKind::kMalloc, false);
  if (fallback == nullptr || a->owns(fallback)) ::_exit(3);
  if (is_glibc_block(fallback) || is_glibc_block(heap)) ::_exit(4);
  if (a->deallocate(fallback, 0, 0, AllocKind::kMalloc) != Arena::FreeResult::kFreed) ::_exit(5);
  // Closed for good: fallback blocks may come and go from now on.
  open_free_shortcut();
  if (is_glibc_block(heap)) ::_exit(6);
  std::free(heap);
  ::_exit(0);
}

TEST_F(BootstrapTest, NoGlibcShortcutOnceTheArenaServedAFallbackBlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(check_no_glibc_shortcut_with_fallback_blocks(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace guardarena::preload
