// ArenaImpl at its limits on guarding (the memory budget, the mprotect
// backend's vm.max_map_count budget): one refusal path for both, the
// rationing that follows it under on_exhaustion=fallback
// (core/guard_rationing.h) and the one warning that says so. Internal to
// arena.cpp.
#pragma once

#include "core/arena_impl.h"
#include "os/raw_writer.h"

// An unnamed namespace: arena.cpp is the one file that includes this.
namespace guardarena {
namespace {

// Writes "N MiB" (or bytes below one MiB).
inline void write_mib(RawWriter& w, std::uint64_t bytes) noexcept {
  if (bytes >= (std::uint64_t{1} << 20)) {
    w.dec(bytes >> 20).str(" MiB");
  } else {
    w.dec(bytes).str(" bytes");
  }
}

template <os::GuardBackend Backend>
inline void* ArenaImpl<Backend>::refuse_at_limit(std::uint32_t id, std::size_t cls,
                                                 std::size_t size, std::size_t align, bool zero,
                                                 GuardLimit limit) noexcept {
  const char* why = limit == GuardLimit::kMemory ? "the guarded memory budget is reached"
                                                 : "the vm.max_map_count budget is used up";
  if (options_.on_exhaustion == Exhaustion::kFail)
    return return_slot_and_fall_back(id, cls, size, align, zero, why);
  const std::uint64_t rate = rationing_.refused();
  if (claim_exhaustion_warning()) {
    // The calling thread's fast-mode counts are folded in; other threads'
    // arrive later, so the number is a close lower bound.
    if (t_cache.owner == this && t_cache.epoch == epoch()) fold_stats(t_cache);
    char buf[640];
    RawWriter w(buf, sizeof buf);
    w.str("guardarena: warning: ");
    if (limit == GuardLimit::kMemory) {
      w.str("the guarded memory budget (");
      write_mib(w, budget_.limit());
      switch (budget_.source()) {
        case BudgetSource::kCgroup:
          w.str(", half the memory cgroup's limit");
          break;
        case BudgetSource::kPhysical:
          w.str(", half of physical memory");
          break;
        default:
          w.str(", max_guarded_memory");
          break;
      }
      w.ch(')');
    } else {
      w.str("the vm.max_map_count budget (")
          .dec(static_cast<std::uint64_t>(VmaBudget::process_limit()))
          .str(" guarded regions)");
    }
    w.str(" is reached with ")
        .dec(live_.blocks())
        .str(" blocks guarded; from now on about 1 new allocation in ")
        .dec(rate)
        .str(
            " is guarded (the rate adapts) and the rest are served unguarded from the system "
            "allocator (on_exhaustion=fallback; ")
        .str(limit == GuardLimit::kMemory
                 ? "see max_guarded_memory"
                 : "raise vm.max_map_count or use backend=guard on Linux 6.13+")
        .str(", print_stats=1)\n");
    write_warning(w.data(), w.size());
  }
  void* p = return_slot_and_fall_back(id, cls, size, align, zero, why);
  if (p != nullptr) rationing_.count_unguarded();
  return p;
}

template <os::GuardBackend Backend>
inline void* ArenaImpl<Backend>::serve_rationed_out(std::size_t size, std::size_t align,
                                                    bool zero) noexcept {
  void* p = serve_by_exhaustion_policy(size, align, zero, "a limit on guarding is reached");
  if (p != nullptr) rationing_.count_unguarded();
  return p;
}

template <os::GuardBackend Backend>
inline void ArenaImpl<Backend>::ease_rationing_if_room() noexcept {
  if (!budget_.has_room()) return;
  if constexpr (Backend::kCountsVmas) {
    if (!VmaBudget::has_room()) return;
  }
  rationing_.eased();
}

}  // namespace
}  // namespace guardarena
