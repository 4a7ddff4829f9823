// Shared helpers for the tests: the two backends as types, so every behaviour
// runs on both (TYPED_TEST).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace guardarena::testing {

struct GuardBackendParam {
  static constexpr const char* kOptions = "backend=guard";
  static constexpr const char* kName = "guard";
};
struct MprotectBackendParam {
  static constexpr const char* kOptions = "backend=mprotect";
  static constexpr const char* kName = "mprotect";
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

}  // namespace guardarena::testing
