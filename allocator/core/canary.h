// Canaries and poison: the byte patterns around and inside blocks that catch
// what guard pages cannot (an overflow into the slack before the next page,
// fast mode's writes to a freed block). This unit fills and scans bytes and
// says what it found; it reports nothing itself (the arena turns its answers
// into findings).
//
// Layout of a block in its slot (offsets from the slot start):
//   [canary_begin, offset)        canary before the block
//   [offset, offset + s)          the block (s = size, 0 counted as 1)
//   [offset + s, canary_end)      canary after the block, up to the end of
//                                 its page or of the open range
// Fast mode writes and checks at most kFastCanaryBefore bytes before the
// block: the rest of the page is rewritten on every reuse and its cost must
// stay near glibc's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/slot.h"

namespace guardarena {

inline constexpr unsigned char kCanaryByte = 0xca;
inline constexpr unsigned char kPoisonByte = 0xfd;
inline constexpr std::size_t kFastCanaryBefore = 64;
// Fast mode poisons blocks up to this size on free; bigger ones are closed
// like full mode (their syscall is cheap next to touching that much memory).
inline constexpr std::size_t kFastPoisonLimit = 64 * 1024;

// Index of the first byte in [p, p+n) that is not `byte`, or n.
std::size_t first_mismatch(const unsigned char* p, std::size_t n, unsigned char byte) noexcept;
// One past the last byte in [p, p+n) that is not `byte`, or 0.
std::size_t last_mismatch_end(const unsigned char* p, std::size_t n, unsigned char byte) noexcept;

// True when [p, p+n) holds only `byte`: the answer of nearly every check,
// found for n <= 64 (poison of small blocks, fast mode's canary before the
// block) with a few overlapping loads and no loop exit per word; the
// position of a bad byte is looked for only once one is known to be there.
using Bytes16 = unsigned char __attribute__((vector_size(16), aligned(1)));
[[gnu::always_inline]] inline Bytes16 load16(const unsigned char* p) noexcept {
  Bytes16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline bool all_zero(Bytes16 v) noexcept {
  std::uint64_t halves[2];
  std::memcpy(halves, &v, sizeof halves);
  return (halves[0] | halves[1]) == 0;
}
[[gnu::always_inline]] inline bool all_bytes_are(const unsigned char* p, std::size_t n,
                                                 unsigned char byte) noexcept {
  Bytes16 pattern = {};
  pattern += byte;
  if (n == kFastCanaryBefore) {  // fast mode's canary before, and 64-byte blocks: unrolled
    return all_zero((load16(p) ^ pattern) | (load16(p + 16) ^ pattern) |
                    (load16(p + 32) ^ pattern) | (load16(p + 48) ^ pattern));
  }
  if (n >= 16 && n <= 64) {
    Bytes16 diff = load16(p + n - 16) ^ pattern;
    for (std::size_t i = 0; i + 16 < n; i += 16) diff |= load16(p + i) ^ pattern;
    return all_zero(diff);
  }
  if (n >= 8 && n < 16) {  // two overlapping words
    const std::uint64_t word = 0x0101010101010101ull * byte;
    std::uint64_t a, b;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + n - 8, 8);
    return ((a ^ word) | (b ^ word)) == 0;
  }
  if (n >= 4 && n < 8) {  // two overlapping half-words
    const std::uint32_t word = 0x01010101u * byte;
    std::uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return ((a ^ word) | (b ^ word)) == 0;
  }
  if (n < 4) return n == 0 || (p[0] == byte && p[n / 2] == byte && p[n - 1] == byte);
  return first_mismatch(p, n, byte) == n;
}

// True when the n <= 16 bytes before `end` all hold `byte`: one 16-byte
// load ending at `end`, its first 16 - n bytes masked off, whatever n is
// (fast mode's canary after a block, from the block's end to its page end).
// [end - 16, end) must be readable.
[[gnu::always_inline]] inline bool ends_with_bytes(const unsigned char* end, std::size_t n,
                                                   unsigned char byte) noexcept {
  // Bytes [16 - n, 16) of load16(kTailMask + n) are 0xff, the others 0.
  alignas(16) static constexpr unsigned char kTailMask[32] = {
      0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
      0,    0,    0,    0,    0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  Bytes16 pattern = {};
  pattern += byte;
  return all_zero((load16(end - 16) ^ pattern) & load16(kTailMask + n));
}

// Sixteen bytes of `byte` at p, in one store.
[[gnu::always_inline]] inline void fill16(unsigned char* p, unsigned char byte) noexcept {
  Bytes16 pattern = {};
  pattern += byte;
  std::memcpy(p, &pattern, sizeof pattern);
}

// memset() for fast mode's short runs (every canary before a block, and the
// poison of blocks of up to 64 bytes): a few overlapping stores instead of a
// call; 64-byte runs, the most common, are four 16-byte stores.
[[gnu::always_inline]] inline void fill_bytes(unsigned char* p, std::size_t n,
                                              unsigned char byte) noexcept {
  Bytes16 pattern = {};
  pattern += byte;
  if (n == kFastCanaryBefore) {
    std::memcpy(p, &pattern, sizeof pattern);
    std::memcpy(p + 16, &pattern, sizeof pattern);
    std::memcpy(p + 32, &pattern, sizeof pattern);
    std::memcpy(p + 48, &pattern, sizeof pattern);
    return;
  }
  // Straight-line stores: a loop of them is a memset to GCC, which then
  // expands it into a loop of 8-byte stores.
  if (n >= 16 && n <= 64) {
    std::memcpy(p, &pattern, sizeof pattern);
    std::memcpy(p + n - 16, &pattern, sizeof pattern);
    if (n > 32) {
      std::memcpy(p + 16, &pattern, sizeof pattern);
      if (n > 48) std::memcpy(p + 32, &pattern, sizeof pattern);
    }
    return;
  }
  if (n >= 8 && n < 16) {
    const std::uint64_t word = 0x0101010101010101ull * byte;
    std::memcpy(p, &word, 8);
    std::memcpy(p + n - 8, &word, 8);
    return;
  }
  if (n >= 4 && n < 8) {
    const std::uint32_t word = 0x01010101u * byte;
    std::memcpy(p, &word, 4);
    std::memcpy(p + n - 4, &word, 4);
    return;
  }
  if (n > 0 && n < 4) {
    p[0] = byte;
    p[n / 2] = byte;
    p[n - 1] = byte;
    return;
  }
  std::memset(p, byte, n);
}

// Where the canaries of a block lie (see the layout above).
struct CanarySpan {
  std::size_t begin = 0;  // canary before: [begin, offset)
  std::size_t end = 0;    // canary after: [offset + s, end)
};
[[gnu::always_inline]] inline CanarySpan canary_span(std::size_t open_begin, std::size_t offset,
                                                     std::size_t s, std::size_t open_end,
                                                     std::size_t page, bool fast) noexcept {
  CanarySpan c;
  c.begin = open_begin;
  if (fast && offset - c.begin > kFastCanaryBefore) c.begin = offset - kFastCanaryBefore;
  c.end = std::min(open_end, round_up(offset + s, page));
  return c;
}

// Fills both canaries of the block at `offset` in the slot at `slot`.
// Zero-length fills are skipped on purpose: a memset of 0 bytes at the first
// byte of a guard page takes glibc's slow masked-store path.
[[gnu::always_inline]] inline void write_canaries_at(unsigned char* slot, CanarySpan c,
                                                     std::size_t offset, std::size_t s) noexcept {
  if (offset > c.begin) fill_bytes(slot + c.begin, offset - c.begin, kCanaryByte);
  const std::size_t after = offset + s;
  if (c.end > after) std::memset(slot + after, kCanaryByte, c.end - after);
}

// What find_canary_damage() found.
struct CanaryDamage {
  enum class Where : std::uint8_t { kNone, kAfter, kBefore };
  Where where = Where::kNone;
  // kAfter: bytes from the block's end to one past the last changed byte.
  // kBefore: bytes from the first changed byte to the block's start.
  std::size_t bad_bytes = 0;
};

// Checks both canaries of the block at `offset` (the one after first).
CanaryDamage find_canary_damage(const unsigned char* slot, CanarySpan c, std::size_t offset,
                                std::size_t s) noexcept;

// Index of the first byte of the freed block [block, block + s) whose poison
// changed, or s when it is intact.
[[gnu::always_inline]] inline std::size_t find_poison_damage(const unsigned char* block,
                                                             std::size_t s) noexcept {
  if (all_bytes_are(block, s, kPoisonByte)) return s;
  return first_mismatch(block, s, kPoisonByte);
}

}  // namespace guardarena
