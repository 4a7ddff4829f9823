// Shared helpers for the tests: the two backends as types, so every behaviour
// runs on both (TYPED_TEST), and the skip for the guard backend on a kernel
// without guard markers (decided from the kernel, not from the library).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "support/kernel_facts.h"

// Skips the current test, with the reason, on a kernel without guard
// markers; fails it when the kernel version and a direct probe disagree.
#define GUARDARENA_REQUIRE_GUARD_MARKERS()                               \
  do {                                                                   \
    if (!::guardarena::testing::guard_markers_here())                    \
      GTEST_SKIP() << ::guardarena::testing::kNoGuardMarkers << ": "     \
                   << ::guardarena::testing::guard_markers().describe(); \
  } while (0)

namespace guardarena::testing {

struct GuardBackendParam {
  static constexpr const char* kOptions = "backend=guard";
  static constexpr const char* kName = "guard";
  static constexpr bool kGuard = true;
};
struct MprotectBackendParam {
  static constexpr const char* kOptions = "backend=mprotect";
  static constexpr const char* kName = "mprotect";
  static constexpr bool kGuard = false;
};
using Backends = ::testing::Types<GuardBackendParam, MprotectBackendParam>;

class BackendNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// Options string for backend B plus extra options.
template <class B>
std::string with_backend(const std::string& extra = "") {
  return extra.empty() ? std::string(B::kOptions) : std::string(B::kOptions) + ":" + extra;
}

// The four mode x backend configurations, for tests that run in all of them
// (TYPED_TEST_SUITE(Suite, testing::ModeBackendConfigs, testing::ConfigNames)).
struct FullGuard {
  static constexpr const char* kOptions = "mode=full:backend=guard";
  static constexpr bool kGuard = true;
};
struct FullMprotect {
  static constexpr const char* kOptions = "mode=full:backend=mprotect";
  static constexpr bool kGuard = false;
};
struct FastGuard {
  static constexpr const char* kOptions = "mode=fast:backend=guard";
  static constexpr bool kGuard = true;
};
struct FastMprotect {
  static constexpr const char* kOptions = "mode=fast:backend=mprotect";
  static constexpr bool kGuard = false;
};
using ModeBackendConfigs = ::testing::Types<FullGuard, FullMprotect, FastGuard, FastMprotect>;

class ConfigNames {
 public:
  template <class T>
  static std::string GetName(int) {
    std::string s = T::kOptions;  // "mode=full:backend=guard" -> "full_guard"
    return s.substr(5, 4) + "_" + s.substr(s.rfind('=') + 1);
  }
};

// Base fixture for suites typed over Backends or ModeBackendConfigs: skips
// the guard-region configurations, with the reason, on kernels without
// MADV_GUARD_INSTALL. A derived SetUp() must call this one first.
template <class C>
class GuardSkippingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (C::kGuard) GUARDARENA_REQUIRE_GUARD_MARKERS();
  }
};

template <class C>
class ModeBackendTest : public GuardSkippingTest<C> {
 protected:
  static std::string opts(const std::string& extra) {
    return std::string(C::kOptions) + ":" + extra;
  }
};

}  // namespace guardarena::testing
