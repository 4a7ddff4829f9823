// The chunk table: the reservation cut into equal chunks, what each chunk
// holds (slots of one class, part of a large block's run, nothing, or blocks
// retired by release()), the allocation of chunk runs, and the arithmetic
// between addresses and slot ids.
//
// A slot id is chunk << slot_shift | index: id -> chunk is a shift, and the
// per-slot metadata array is indexed by id. A class chunk is laid out as
// SlotGeometry says ([g][u pages][g]...); a large block's run of chunks
// holds one slot whose id is its head chunk's.
//
// Thread safety: take_run(), free_run(), retire_used() and
// lock()/unlock() are serialised by the table's mutex; the address
// arithmetic and chunk kinds are read lock-free (kind is published with a
// release store after the rest of the entry), including by the fault
// handler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "core/metadata.h"
#include "core/slot.h"

namespace guardarena {

// kReleased: handed out before the last release(); inaccessible, and not
// reused until the rest of the reservation is used up, so a pointer kept
// across release() faults (use-after-release) instead of reaching new data.
enum class ChunkKind : std::uint8_t { kFree = 0, kClass, kLarge, kReleased };

struct ChunkInfo {
  std::atomic<ChunkKind> kind;
  std::uint8_t class_index;
  std::uint8_t prepared;  // the backend's prepare_chunk() ran on it
  std::uint32_t head;     // large: first chunk of the run
  std::uint32_t run_len;  // large: chunks in the run (on the head)
};

struct FreeRun {
  std::uint32_t start;
  std::uint32_t len;
};

class ChunkTable {
 public:
  static constexpr std::size_t kMaxClasses = 32;

  // Slot classes 0..max_class (class_pages(max_class) pages at most, below a
  // quarter chunk), large blocks are class max_class + 1.
  // Precondition: page and chunk_bytes are powers of two,
  // chunk_bytes / page <= 16384, max_class < kMaxClasses.
  void init_geometry(std::size_t page, std::size_t chunk_bytes, std::size_t max_class) noexcept;
  // Ids a chunk can hold (a power of two).
  std::uint32_t max_slots() const noexcept { return max_slots_; }
  // Maps the table for the `num_chunks` chunks of the reservation at `base`
  // (aligned to chunk_bytes); false when the mapping fails.
  bool map(std::uintptr_t base, std::uint32_t num_chunks) noexcept;
  void unmap() noexcept;

  std::size_t large_class() const noexcept { return max_class_ + 1; }
  std::size_t page() const noexcept { return page_; }
  std::uint32_t num_chunks() const noexcept { return num_chunks_; }
  // Chunks handed out at least once since creation or the last release.
  std::uint32_t used() const noexcept { return next_chunk_; }
  ChunkInfo& operator[](std::uint32_t c) noexcept { return chunks_[c]; }
  const ChunkInfo& operator[](std::uint32_t c) const noexcept { return chunks_[c]; }

  std::uint32_t chunk_of(std::uintptr_t a) const noexcept { return chunk_at(a - base_); }
  // The chunk at `offset` bytes into the reservation.
  std::uint32_t chunk_at(std::uintptr_t offset) const noexcept {
    return static_cast<std::uint32_t>(offset >> chunk_shift_);
  }
  std::uintptr_t chunk_base(std::uint32_t c) const noexcept {
    return base_ + std::uintptr_t{c} * chunk_bytes_;
  }
  std::uint32_t slots_per_chunk(std::size_t cls) const noexcept { return slots_per_chunk_[cls]; }
  std::uint32_t slot_id(std::uint32_t chunk, std::uint32_t index) const noexcept {
    return (chunk << slot_shift_) | index;
  }
  std::uint32_t chunk_of_id(std::uint32_t id) const noexcept { return id >> slot_shift_; }

  // First usable byte of slot `id` of class `cls`.
  std::uintptr_t slot_address(std::uint32_t id, std::size_t cls) const noexcept {
    const std::uintptr_t base = chunk_base(id >> slot_shift_);
    if (cls == large_class()) return base + page_;
    const std::uintptr_t index = id & (max_slots_ - 1);
    return base + ((1 + index * stride_pages_[cls]) << page_shift_);
  }

  // Slot whose usable pages hold `a` (an address in the reservation) and its
  // class, or kNoSlot (a guard page, a free or retired chunk).
  std::uint32_t slot_of(std::uintptr_t a, std::size_t& cls) const noexcept {
    // Shifts and a reciprocal multiply, not divisions: this runs on every free.
    const std::uint32_t chunk = chunk_of(a);
    const ChunkInfo& ci = chunks_[chunk];
    const ChunkKind k = ci.kind.load(std::memory_order_acquire);
    if (k == ChunkKind::kLarge) {
      cls = large_class();
      return ci.head << slot_shift_;
    }
    if (k != ChunkKind::kClass) return kNoSlot;
    cls = ci.class_index;
    const std::uintptr_t off_pages = (a - chunk_base(chunk)) >> page_shift_;
    if (off_pages == 0) return kNoSlot;
    const std::uint64_t idx = ((off_pages - 1) * stride_magic_[cls]) >> 32;
    const std::uint64_t within = off_pages - 1 - idx * stride_pages_[cls];
    if (idx >= slots_per_chunk_[cls] || within >= stride_pages_[cls] - 1) return kNoSlot;
    return (chunk << slot_shift_) | static_cast<std::uint32_t>(idx);
  }

  // A run of `len` free chunks, or kNoSlot when the reservation is full
  // (retired chunks are recycled first). A large run gets its head and
  // length recorded; its kind is published by publish_large() once the
  // caller has prepared it.
  std::uint32_t take_run(std::uint32_t len, bool large) noexcept;
  void publish_large(std::uint32_t start, std::uint32_t len) noexcept;
  // Marks the chunk as holding slots of `cls`.
  void publish_class(std::uint32_t c, std::size_t cls) noexcept;
  // Chunks back to the free runs (a large block left quarantine, or a run
  // that could not be prepared).
  void free_run(std::uint32_t start, std::uint32_t len) noexcept;
  // release(): every chunk handed out becomes kReleased and unprepared.
  // Caller holds the table's lock.
  void retire_used_locked() noexcept;

  void lock() noexcept { mu_.lock(); }
  void unlock() noexcept { mu_.unlock(); }

 private:
  void recycle_released_locked() noexcept;

  std::uintptr_t base_ = 0;
  std::size_t page_ = 0;
  std::size_t chunk_bytes_ = 0;
  std::size_t max_class_ = 0;
  std::uint32_t max_slots_ = 0;  // power of two
  std::uint32_t slot_shift_ = 0;
  std::uint32_t page_shift_ = 0;
  std::uint32_t chunk_shift_ = 0;
  std::uint32_t stride_pages_[kMaxClasses] = {};
  std::uint64_t stride_magic_[kMaxClasses] = {};
  std::uint32_t slots_per_chunk_[kMaxClasses] = {};
  std::uint32_t num_chunks_ = 0;
  ChunkInfo* chunks_ = nullptr;
  FreeRun* free_runs_ = nullptr;
  std::size_t table_bytes_ = 0;
  std::mutex mu_;
  std::uint32_t next_chunk_ = 0;
  std::uint32_t released_end_ = 0;  // chunks below it were retired by release()
  std::uint32_t free_run_count_ = 0;
};

}  // namespace guardarena
