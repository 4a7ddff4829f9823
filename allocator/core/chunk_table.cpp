// Chunk runs of the chunk table (core/chunk_table.h).
#include "core/chunk_table.h"

#include <bit>

#include "os/os_linux.h"

namespace guardarena {

void ChunkTable::init_geometry(std::size_t page, std::size_t chunk_bytes,
                               std::size_t max_class) noexcept {
  page_ = page;
  chunk_bytes_ = chunk_bytes;
  max_class_ = max_class;
  slot_shift_ =
      static_cast<std::uint32_t>(std::bit_width(SlotGeometry{page, 1}.slots_in(chunk_bytes) - 1));
  max_slots_ = std::uint32_t{1} << slot_shift_;
  page_shift_ = static_cast<std::uint32_t>(std::countr_zero(page));
  chunk_shift_ = static_cast<std::uint32_t>(std::countr_zero(chunk_bytes));
  for (std::size_t c = 0; c <= max_class; ++c) {
    // address -> slot index divides by the stride (usable + 1 pages), which
    // is rarely a power of two: multiply by a 32.32 reciprocal instead.
    // Exact for page offsets below 2^16 and strides below 2^15: chunks of at
    // most 16384 pages and classes below a quarter chunk keep it so.
    stride_pages_[c] = static_cast<std::uint32_t>(class_pages(c) + 1);
    stride_magic_[c] = (std::uint64_t{1} << 32) / stride_pages_[c] + 1;
    slots_per_chunk_[c] =
        static_cast<std::uint32_t>(SlotGeometry{page, class_pages(c)}.slots_in(chunk_bytes));
  }
}

bool ChunkTable::map(std::uintptr_t base, std::uint32_t num_chunks) noexcept {
  base_ = base;
  num_chunks_ = num_chunks;
  table_bytes_ = num_chunks * (sizeof(ChunkInfo) + sizeof(FreeRun));
  void* tables = os::map_internal(table_bytes_, "guardarena:chunks");
  if (tables == nullptr) return false;
  chunks_ = static_cast<ChunkInfo*>(tables);
  free_runs_ = reinterpret_cast<FreeRun*>(chunks_ + num_chunks_);
  return true;
}

void ChunkTable::unmap() noexcept {
  if (chunks_ != nullptr) os::release(chunks_, table_bytes_);
  chunks_ = nullptr;
}

std::uint32_t ChunkTable::take_run(std::uint32_t len, bool large) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  std::uint32_t start = kNoSlot;
  for (int attempt = 0; attempt < 2 && start == kNoSlot; ++attempt) {
    for (std::uint32_t i = 0; i < free_run_count_; ++i) {
      if (free_runs_[i].len >= len) {
        start = free_runs_[i].start;
        free_runs_[i].start += len;
        free_runs_[i].len -= len;
        if (free_runs_[i].len == 0) free_runs_[i] = free_runs_[--free_run_count_];
        break;
      }
    }
    if (start == kNoSlot && num_chunks_ - next_chunk_ >= len) {
      start = next_chunk_;
      next_chunk_ += len;
    }
    // The rest of the reservation is used up: recycle what release()
    // retired, then look again.
    if (start != kNoSlot || released_end_ == 0) break;
    recycle_released_locked();
  }
  if (start == kNoSlot) return kNoSlot;
  if (large) {
    for (std::uint32_t c = start; c < start + len; ++c) {
      chunks_[c].head = start;
      chunks_[c].class_index = static_cast<std::uint8_t>(large_class());
    }
    chunks_[start].run_len = len;
  }
  return start;
}

void ChunkTable::publish_large(std::uint32_t start, std::uint32_t len) noexcept {
  for (std::uint32_t c = start; c < start + len; ++c)
    chunks_[c].kind.store(ChunkKind::kLarge, std::memory_order_release);
}

void ChunkTable::publish_class(std::uint32_t c, std::size_t cls) noexcept {
  chunks_[c].class_index = static_cast<std::uint8_t>(cls);
  chunks_[c].kind.store(ChunkKind::kClass, std::memory_order_release);
}

void ChunkTable::recycle_released_locked() noexcept {
  std::uint32_t run_start = kNoSlot;
  for (std::uint32_t c = 0; c <= released_end_; ++c) {
    bool released = c < released_end_ &&
                    chunks_[c].kind.load(std::memory_order_relaxed) == ChunkKind::kReleased;
    if (released) {
      chunks_[c].kind.store(ChunkKind::kFree, std::memory_order_release);
      if (run_start == kNoSlot) run_start = c;
    } else if (run_start != kNoSlot) {
      free_runs_[free_run_count_++] = FreeRun{run_start, c - run_start};
      run_start = kNoSlot;
    }
  }
  released_end_ = 0;
}

void ChunkTable::free_run(std::uint32_t start, std::uint32_t len) noexcept {
  std::lock_guard<std::mutex> g(mu_);
  for (std::uint32_t c = start; c < start + len; ++c)
    chunks_[c].kind.store(ChunkKind::kFree, std::memory_order_release);
  // Merge with an adjacent free run when there is one; the list stays short
  // because only large blocks ever give chunks back.
  for (std::uint32_t i = 0; i < free_run_count_; ++i) {
    FreeRun& r = free_runs_[i];
    if (r.start + r.len == start) {
      r.len += len;
      return;
    }
    if (start + len == r.start) {
      r.start = start;
      r.len += len;
      return;
    }
  }
  free_runs_[free_run_count_++] = FreeRun{start, len};
}

void ChunkTable::retire_used_locked() noexcept {
  for (std::uint32_t c = 0; c < next_chunk_; ++c) {
    chunks_[c].kind.store(ChunkKind::kReleased, std::memory_order_release);
    chunks_[c].prepared = 0;  // the caller's mmap over the span removed any guard markers
    chunks_[c].head = 0;
    chunks_[c].run_len = 0;
  }
  released_end_ = next_chunk_;
  free_run_count_ = 0;
}

}  // namespace guardarena
