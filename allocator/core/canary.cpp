// Byte scans of core/canary.h past the short inline cases.
#include "core/canary.h"

#include <array>

namespace guardarena {
namespace {

// Filled pages to compare slack and poison against: glibc's vectorised
// memcmp checks a page of slack (full mode, at every free) several times
// faster than a word loop.
constexpr std::size_t kPatternBytes = 4096;
template <unsigned char Byte>
constexpr std::array<unsigned char, kPatternBytes> kFilled = [] {
  std::array<unsigned char, kPatternBytes> a{};
  for (auto& x : a) x = Byte;
  return a;
}();

// nullptr for a byte with no filled page: the word loops then do all of it.
const unsigned char* filled_with(unsigned char byte) noexcept {
  if (byte == kCanaryByte) return kFilled<kCanaryByte>.data();
  if (byte == kPoisonByte) return kFilled<kPoisonByte>.data();
  return nullptr;
}

}  // namespace

std::size_t first_mismatch(const unsigned char* p, std::size_t n, unsigned char byte) noexcept {
  std::size_t i = 0;
  const unsigned char* filled = filled_with(byte);
  if (n > 64 && filled != nullptr) {
    for (std::size_t k; i < n; i += k) {
      k = std::min(n - i, kPatternBytes);
      if (std::memcmp(p + i, filled, k) != 0) break;
    }
  }
  const std::uint64_t pattern = 0x0101010101010101ull * byte;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != pattern) break;
  }
  for (; i < n; ++i) {
    if (p[i] != byte) return i;
  }
  return n;
}

std::size_t last_mismatch_end(const unsigned char* p, std::size_t n, unsigned char byte) noexcept {
  std::size_t end = n;
  const unsigned char* filled = filled_with(byte);
  if (n > 64 && filled != nullptr) {
    for (std::size_t k; end > 0; end -= k) {
      k = std::min(end, kPatternBytes);
      if (std::memcmp(p + end - k, filled, k) != 0) break;
    }
  }
  const std::uint64_t pattern = 0x0101010101010101ull * byte;
  for (; end >= 8; end -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p + end - 8, 8);
    if (w != pattern) break;
  }
  for (; end > 0; --end) {
    if (p[end - 1] != byte) return end;
  }
  return 0;
}

CanaryDamage find_canary_damage(const unsigned char* slot, CanarySpan c, std::size_t offset,
                                std::size_t s) noexcept {
  CanaryDamage d;
  const std::size_t after = offset + s;
  if (c.end > after && !all_bytes_are(slot + after, c.end - after, kCanaryByte)) {
    const std::size_t bad_end = last_mismatch_end(slot + after, c.end - after, kCanaryByte);
    if (bad_end != 0) {
      d.where = CanaryDamage::Where::kAfter;
      d.bad_bytes = bad_end;
      return d;
    }
  }
  const std::size_t before = offset - c.begin;
  if (all_bytes_are(slot + c.begin, before, kCanaryByte)) return d;
  const std::size_t first_bad = first_mismatch(slot + c.begin, before, kCanaryByte);
  if (first_bad != before) {
    d.where = CanaryDamage::Where::kBefore;
    d.bad_bytes = before - first_bad;
  }
  return d;
}

}  // namespace guardarena
