// Free-time checks and the findings they raise (core/free_checks.h).
#include "core/free_checks.h"

#include <bit>
#include <thread>

#include "core/hooks.h"

namespace guardarena {

void fill_block(BlockInfo& b, const SlotMeta& m, std::uintptr_t slot_start) noexcept {
  b.block = slot_start + m.offset;
  b.size = m.size;
  b.align = std::uint64_t{1} << m.align_log2;
  b.alloc_kind = m.alloc_kind;
  b.alloc_stack = m.alloc_stack;
  b.alloc_tid = m.alloc_tid;
  b.free_tid = m.free_tid.load(std::memory_order_acquire);
  b.free_stack = m.free_stack.load(std::memory_order_relaxed);
}

Finding make_finding(ErrorKind k, std::uintptr_t addr, const SlotMeta& m,
                     std::uintptr_t slot_start) noexcept {
  Finding r;
  r.kind = k;
  r.address = addr;
  r.has_block = true;
  fill_block(r.block, m, slot_start);
  r.distance = static_cast<std::int64_t>(addr - r.block.block);
  return r;
}

void report_failed_free(const SlotMeta& m, std::uintptr_t a, std::uintptr_t block,
                        std::uintptr_t slot_start, AllocKind kind) noexcept {
  const SlotState st = m.state.load(std::memory_order_acquire);
  if (a == block && st != SlotState::kLive && st != SlotState::kUnused) {
    // Two frees racing: the winner records its stack right after its state
    // change; give it a moment so the report names the first free.
    for (int i = 0; i < 10000 && m.free_tid.load(std::memory_order_acquire) == 0; ++i)
      std::this_thread::yield();
    Finding r = make_finding(ErrorKind::kDoubleFree, a, m, slot_start);
    r.dealloc_kind = static_cast<std::uint8_t>(kind);
    report_finding(r);
  }
  report_invalid_free(a, kind, st == SlotState::kLive ? &m : nullptr, slot_start);
}

void report_invalid_free(std::uintptr_t a, AllocKind kind, const SlotMeta* m,
                         std::uintptr_t slot_start) noexcept {
  Finding r;
  r.kind = ErrorKind::kInvalidFree;
  r.address = a;
  r.dealloc_kind = static_cast<std::uint8_t>(kind);
  if (m != nullptr) {
    r.has_block = true;
    fill_block(r.block, *m, slot_start);
    r.distance = static_cast<std::int64_t>(a - r.block.block);
  }
  report_finding(r);
}

void check_free_matches(const SlotMeta& m, std::uintptr_t a, std::uintptr_t slot_start,
                        std::size_t size, std::size_t align, AllocKind kind) noexcept {
  const auto allocated = static_cast<AllocKind>(m.alloc_kind);
  if (allocated != kind && !(allocated == AllocKind::kPmr || kind == AllocKind::kPmr))
      [[unlikely]] {
    Finding r = make_finding(ErrorKind::kAllocDeallocMismatch, a, m, slot_start);
    r.dealloc_kind = static_cast<std::uint8_t>(kind);
    report_finding(r);
  }
  const bool size_differs = size != 0 && size != m.size;
  const bool align_differs =
      kind == AllocKind::kPmr && align != 0 && std::countr_zero(align) != m.align_log2;
  if (size_differs || align_differs) [[unlikely]] {
    Finding r = make_finding(ErrorKind::kSizeMismatch, a, m, slot_start);
    r.expected_size = size;
    r.expected_align = align;
    r.dealloc_kind = static_cast<std::uint8_t>(kind);
    report_finding(r);
  }
}

bool find_canary_finding(const SlotMeta& m, std::uintptr_t slot_start, std::size_t page, bool fast,
                         Finding& out) noexcept {
  const std::size_t s = m.size == 0 ? 1 : m.size;
  const CanaryDamage d = find_canary_damage(
      reinterpret_cast<const unsigned char*>(slot_start),
      canary_span(m.open_begin, m.offset, s, m.open_end, page, fast), m.offset, s);
  if (d.where == CanaryDamage::Where::kAfter) {
    out = make_finding(ErrorKind::kSlackOverflow, slot_start + m.offset + s, m, slot_start);
    out.bad_bytes = d.bad_bytes;
    out.distance = static_cast<std::int64_t>(s);
    return true;
  }
  if (d.where == CanaryDamage::Where::kBefore) {
    const std::size_t i = m.offset - d.bad_bytes;
    out = make_finding(ErrorKind::kSlackUnderflow, slot_start + i, m, slot_start);
    out.bad_bytes = d.bad_bytes;
    out.distance = -static_cast<std::int64_t>(d.bad_bytes);
    return true;
  }
  return false;
}

void check_slot_canaries(const SlotMeta& m, std::uintptr_t slot_start, std::size_t page,
                         bool fast) noexcept {
  Finding r;
  if (find_canary_finding(m, slot_start, page, fast, r)) report_finding(r);
}

bool find_poison_finding(const SlotMeta& m, std::uintptr_t slot_start, Finding& out) noexcept {
  const std::size_t s = m.size == 0 ? 1 : m.size;
  if (s > kFastPoisonLimit) return false;
  const std::size_t i =
      find_poison_damage(reinterpret_cast<const unsigned char*>(slot_start + m.offset), s);
  if (i == s) return false;
  out = make_finding(ErrorKind::kWriteAfterFree, slot_start + m.offset + i, m, slot_start);
  out.distance = static_cast<std::int64_t>(i);
  return true;
}

void report_write_after_free(const SlotMeta& m, std::uintptr_t slot_start,
                             std::size_t at) noexcept {
  Finding r = make_finding(ErrorKind::kWriteAfterFree, slot_start + m.offset + at, m, slot_start);
  r.distance = static_cast<std::int64_t>(at);
  report_finding(r);
}

}  // namespace guardarena
