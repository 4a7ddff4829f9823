// Slot math: pure functions from sizes and addresses to slot classes, slot
// addresses and block placement. No mappings, no state: unit-tested directly.
//
// A class chunk is laid out as [g][u pages][g][u pages][g]...: one leading
// guard page, then slots of `u` usable pages each followed by a guard page,
// so every usable region has a guard page on both sides.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace guardarena {

// Usable pages per slot by class: 1, 2, 3, 4, then powers of two. Address
// space is cheap and only the pages a block needs are ever made accessible,
// so coarse classes cost no memory.
inline constexpr std::size_t kExactClasses = 4;

constexpr std::size_t class_pages(std::size_t class_index) noexcept {
  return class_index < kExactClasses ? class_index + 1 : std::size_t{1} << (class_index - 1);
}

// Smallest class whose slots hold `pages` usable pages (pages >= 1).
constexpr std::size_t class_for_pages(std::size_t pages) noexcept {
  if (pages <= kExactClasses) return pages == 0 ? 0 : pages - 1;
  return static_cast<std::size_t>(std::bit_width(pages - 1)) + 1;
}

// `to` must be a power of two (alignments and page sizes are): a mask, not a
// division, because this runs on every allocation.
constexpr std::size_t round_up(std::size_t v, std::size_t to) noexcept {
  return (v + to - 1) & ~(to - 1);
}

struct SlotGeometry {
  std::size_t page = 0;
  std::size_t usable_pages = 0;

  constexpr std::size_t usable_bytes() const noexcept { return usable_pages * page; }
  constexpr std::size_t stride() const noexcept { return (usable_pages + 1) * page; }
  constexpr std::size_t slots_in(std::size_t chunk_bytes) const noexcept {
    return chunk_bytes <= page ? 0 : (chunk_bytes - page) / stride();
  }
  // Offset of slot i's first usable byte from the chunk base.
  constexpr std::size_t slot_offset(std::size_t i) const noexcept { return page + i * stride(); }
};

// Where a block sits inside its slot.
struct Placement {
  std::size_t offset = 0;      // user pointer - slot start
  std::size_t open_begin = 0;  // first accessible byte (page-aligned) - slot start
  std::size_t open_end = 0;    // one past the last accessible byte (page-aligned) - slot start
};

// Bytes of slot a request needs so that any placement below fits; sizes of 0
// are treated as 1 (a unique pointer, as glibc does).
constexpr std::size_t slot_bytes_needed(std::size_t size, std::size_t align,
                                        std::size_t page) noexcept {
  std::size_t s = size == 0 ? 1 : size;
  std::size_t need = round_up(s, align < page ? align : page);
  if (align > page) need += align;  // room to slide to an align boundary
  return round_up(need, page);
}

// Right-aligned (default): the block ends as close to the trailing guard as
// `align` allows, so an access one byte past the rounded end faults.
// Left-aligned (protect_below): the block starts at the first aligned address
// so an underflow hits the leading guard.
constexpr Placement place_block(std::uintptr_t slot_start, std::size_t usable_bytes,
                                std::size_t size, std::size_t align, bool protect_below,
                                std::size_t page) noexcept {
  std::size_t s = size == 0 ? 1 : size;
  Placement p;
  if (protect_below) {
    std::uintptr_t ptr = (slot_start + align - 1) & ~(std::uintptr_t{align} - 1);
    p.offset = ptr - slot_start;
  } else {
    std::uintptr_t end = slot_start + usable_bytes;
    std::uintptr_t ptr = (end - s) & ~(std::uintptr_t{align} - 1);
    p.offset = ptr - slot_start;
  }
  p.open_begin = p.offset & ~(page - 1);
  p.open_end = round_up(p.offset + s, page);
  if (!protect_below) p.open_end = usable_bytes;
  return p;
}

}  // namespace guardarena
