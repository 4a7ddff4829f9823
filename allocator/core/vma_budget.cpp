// The process-wide mapping budget of the mprotect backend (core/vma_budget.h).
#include "core/vma_budget.h"

#include "os/os_linux.h"

namespace guardarena {
namespace {

std::atomic<std::int64_t> g_open_regions{0};
std::atomic<std::int64_t> g_region_limit{-1};

std::int64_t region_limit(std::uint64_t headroom) noexcept {
  std::int64_t lim = g_region_limit.load(std::memory_order_acquire);
  if (lim >= 0) return lim;
  lim = vma_region_limit(static_cast<std::int64_t>(os::max_map_count()),
                         static_cast<std::int64_t>(os::count_mappings()),
                         static_cast<std::int64_t>(headroom));
  g_region_limit.store(lim, std::memory_order_release);
  return lim;
}

}  // namespace

void VmaBudget::init(std::uint64_t headroom) noexcept {
  region_limit(headroom);
}

bool VmaBudget::try_open(std::uint64_t headroom) noexcept {
  if (g_open_regions.fetch_add(1, std::memory_order_relaxed) >= region_limit(headroom)) {
    g_open_regions.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  open_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void VmaBudget::closed() noexcept {
  g_open_regions.fetch_sub(1, std::memory_order_relaxed);
  open_.fetch_sub(1, std::memory_order_relaxed);
}

void VmaBudget::close_all() noexcept {
  g_open_regions.fetch_sub(open_.exchange(0), std::memory_order_relaxed);
}

std::int64_t VmaBudget::process_open() noexcept {
  return g_open_regions.load(std::memory_order_relaxed);
}

std::int64_t VmaBudget::process_limit() noexcept {
  return g_region_limit.load(std::memory_order_acquire);
}

}  // namespace guardarena
