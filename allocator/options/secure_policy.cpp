// The secure-execution policy over the option table: which values a
// set-user-ID program accepts from its caller's environment. No allocation:
// the shim applies it while its own malloc is not ready yet.
#include <cstring>
#include <type_traits>

#include "options/options.h"
#include "os/raw_writer.h"

namespace guardarena {

bool operator==(const Text& a, const Text& b) noexcept {
  return std::strcmp(a.value, b.value) == 0;
}

namespace {

constexpr SecurePolicy kKeep = SecurePolicy::kKeep;
constexpr SecurePolicy kDrop = SecurePolicy::kDrop;
constexpr SecurePolicy kCap = SecurePolicy::kCap;

constexpr SecurePolicy kPolicies[] = {
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) k##secure,
#include "options/options.inc"
#undef GUARDARENA_OPTION
};
static_assert(sizeof kPolicies / sizeof kPolicies[0] == kOptionCount);

// Returns true when `value` had to change.
template <class T>
bool restrict_value(SecurePolicy policy, T& value, const T& fallback) noexcept {
  if (policy == kDrop && !(value == fallback)) {
    value = fallback;
    return true;
  }
  if constexpr (std::is_arithmetic_v<T>) {
    if (policy == kCap && value > fallback) {
      value = fallback;
      return true;
    }
  }
  return false;
}

// A Budget option's 0 lifts the bound: above any cap, so a capped one goes
// back to its default (auto, resolved at start-up where a value above it is
// cut to it too: core/memory_budget.cpp).
bool restrict_budget(SecurePolicy policy, std::uint64_t& value, std::uint64_t fallback) noexcept {
  if (policy == kCap && value == 0 && fallback != 0) {
    value = fallback;
    return true;
  }
  return restrict_value(policy, value, fallback);
}

#define GUARDARENA_RESTRICT_Bool restrict_value
#define GUARDARENA_RESTRICT_Size restrict_value
#define GUARDARENA_RESTRICT_Count restrict_value
#define GUARDARENA_RESTRICT_Enum restrict_value
#define GUARDARENA_RESTRICT_Text restrict_value
#define GUARDARENA_RESTRICT_Budget restrict_budget

}  // namespace

SecurePolicy secure_policy(std::size_t index) noexcept {
  return index < kOptionCount ? kPolicies[index] : kDrop;
}

std::size_t apply_secure_policy(Options& o, RawWriter& changed) noexcept {
  static const Options kDefaults{};
  std::size_t count = 0;
  std::size_t index = 0;
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help)      \
  if (GUARDARENA_RESTRICT_##kind(kPolicies[index], o.name, kDefaults.name)) { \
    if (count++ != 0) changed.str(", ");                                      \
    changed.str(#name);                                                       \
  }                                                                           \
  ++index;
#include "options/options.inc"
#undef GUARDARENA_OPTION
  return count;
}

}  // namespace guardarena
