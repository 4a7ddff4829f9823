// The memory budget: the resident memory guarding adds to a program (the
// open pages of guarded slots, live, quarantined or cached; their metadata
// records; the stack depot) is counted once for the whole process and
// bounded by max_guarded_memory. Every arena charges the one process-wide
// total when it opens a slot's pages and uncharges it when it closes them,
// both on paths that make a system call anyway: the allocation and free
// paths that reuse open slots never touch the count. An arena whose limit
// the total would pass refuses to open more and applies the exhaustion
// policy (core/guard_rationing.h).
//
// auto resolves to half of the memory the process may use (its memory
// cgroup's limit, else physical memory: os/memory_limit.h), read once per
// process at the first arena's creation.
//
// Thread safety: lock-free (relaxed atomics); the limit is set in init(),
// before the arena is published.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/metadata.h"
#include "os/memory_limit.h"

namespace guardarena {

// Where an arena's budget came from.
enum class BudgetSource : std::uint8_t { kNone, kOption, kCgroup, kPhysical };
const char* budget_source_name(BudgetSource s) noexcept;

struct BudgetConfig {
  std::uint64_t bytes = 0;  // 0 = no budget
  BudgetSource source = BudgetSource::kNone;
};

// max_guarded_memory's value resolved against the process's memory `limit`:
// 0 is no budget, kAutoBudget half of the limit, anything else itself, except
// in a secure-execution process (`secure`), where a caller's value above
// auto's answer is cut to it.
BudgetConfig resolve_budget(std::uint64_t option, bool secure, os::MemoryLimit limit) noexcept;

// The stack depot's resident bytes, installed by the layer that owns the
// depot (report); nullptr until then. Read when a slot is about to open.
using ResidentProbe = std::uint64_t (*)() noexcept;
void set_depot_probe(ResidentProbe probe) noexcept;

// Bytes every open slot adds besides its pages: its metadata record.
inline constexpr std::uint64_t kSlotRecordBytes = sizeof(SlotMeta);

// One arena's limit and its share of the process-wide total.
class MemoryBudget {
 public:
  // Resolves max_guarded_memory (reads the process's memory limit the first
  // time any arena asks, with raw syscalls).
  void init(std::uint64_t option) noexcept;
  // Counts `bytes` more: false, and nothing counted, when the process-wide
  // total (depot included) would pass this arena's limit. The depot is
  // weighed here, not charged: stacks it stores after the last opening can
  // take the total past the limit by what they add.
  bool try_charge(std::uint64_t bytes) noexcept;
  void uncharge(std::uint64_t bytes) noexcept;
  // Everything this arena charged is gone (release(), destruction).
  void uncharge_all() noexcept;
  // The process-wide total is below three quarters of this arena's limit
  // (true without a limit): a rationed arena may guard more again.
  bool has_room() const noexcept;

  std::uint64_t limit() const noexcept { return config_.bytes; }
  BudgetSource source() const noexcept { return config_.source; }
  // Resident bytes guarding adds in the whole process, now and at peak.
  static std::uint64_t process_resident() noexcept;
  static std::uint64_t process_peak() noexcept;

 private:
  BudgetConfig config_;
  std::atomic<std::uint64_t> charged_{0};
};

}  // namespace guardarena
