// The fault handler's question to the core: what is at this address?
// (core/address_query.h)
#include "core/address_query.h"

#include <cstdint>

namespace guardarena {

void describe_address(const ChunkTable& table, const SlotMeta* meta, std::uintptr_t addr,
                      AddressInfo& out) noexcept {
  out = AddressInfo{};
  std::uint32_t chunk = table.chunk_of(addr);
  const ChunkInfo& ci = table[chunk];
  ChunkKind k = ci.kind.load(std::memory_order_acquire);
  if (k == ChunkKind::kFree) return;  // wild access inside the heap
  if (k == ChunkKind::kReleased) {
    out.kind = ErrorKind::kUseAfterRelease;
    return;
  }
  std::uint32_t candidates[3];
  std::size_t cls_of[3];
  std::size_t n = 0;
  if (k == ChunkKind::kLarge) {
    candidates[n] = table.slot_id(ci.head, 0);
    cls_of[n++] = table.large_class();
  } else {
    std::size_t cls = ci.class_index;
    SlotGeometry g{table.page(), class_pages(cls)};
    std::uintptr_t off = addr - table.chunk_base(chunk);
    std::size_t idx = off < table.page() ? 0 : (off - table.page()) / g.stride();
    std::size_t slots = table.slots_per_chunk(cls);
    for (std::size_t j = idx == 0 ? 0 : idx - 1; j <= idx + 1 && j < slots; ++j) {
      candidates[n] = table.slot_id(chunk, static_cast<std::uint32_t>(j));
      cls_of[n++] = cls;
    }
  }
  // Nearest block that is live or freed; inside a freed block wins.
  std::uint64_t best = UINT64_MAX;
  for (std::size_t i = 0; i < n; ++i) {
    const SlotMeta& m = meta[candidates[i]];
    SlotState st = m.state.load(std::memory_order_acquire);
    if (st == SlotState::kUnused) continue;
    std::uintptr_t slot_start = table.slot_address(candidates[i], cls_of[i]);
    std::uintptr_t b = slot_start + m.offset;
    std::uint64_t s = m.size == 0 ? 1 : m.size;
    std::uint64_t dist = addr < b ? b - addr : (addr >= b + s ? addr - (b + s) + 1 : 0);
    bool freed = st != SlotState::kLive;
    // Prefer live blocks over old freed ones at equal distance.
    std::uint64_t score = dist * 2 + (freed && dist != 0 ? 1 : 0);
    if (score >= best) continue;
    best = score;
    out.has_block = true;
    out.block = b;
    out.size = m.size;
    out.align = std::uint64_t{1} << m.align_log2;
    out.distance = static_cast<std::int64_t>(addr - b);
    out.state = st;
    out.alloc_kind = m.alloc_kind;
    out.alloc_stack = m.alloc_stack;
    out.alloc_tid = m.alloc_tid;
    out.free_tid = m.free_tid.load(std::memory_order_acquire);
    out.free_stack = m.free_stack.load(std::memory_order_relaxed);
    if (freed) {
      out.kind = ErrorKind::kHeapUseAfterFree;
    } else if (addr < b) {
      out.kind = ErrorKind::kHeapBufferUnderflow;
    } else {
      out.kind = ErrorKind::kHeapBufferOverflow;
    }
  }
}

}  // namespace guardarena
