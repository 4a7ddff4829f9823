// The process-wide memory budget (core/memory_budget.h).
#include "core/memory_budget.h"

#include "options/options.h"
#include "os/secure_execution.h"

namespace guardarena {
namespace {

std::atomic<std::uint64_t> g_resident{0};
std::atomic<std::uint64_t> g_peak{0};
std::atomic<ResidentProbe> g_depot_probe{nullptr};

// The process's memory limit, read once: 0 until then. Two arenas created
// at once may both read it; they read the same answer.
std::atomic<std::uint64_t> g_limit_bytes{0};
std::atomic<os::MemoryLimitSource> g_limit_source{os::MemoryLimitSource::kPhysical};

os::MemoryLimit process_memory_limit() noexcept {
  std::uint64_t bytes = g_limit_bytes.load(std::memory_order_acquire);
  if (bytes == 0) {
    const os::MemoryLimit l = os::memory_limit("", os::physical_memory());
    g_limit_source.store(l.source, std::memory_order_relaxed);
    g_limit_bytes.store(l.bytes, std::memory_order_release);
    return l;
  }
  return {bytes, g_limit_source.load(std::memory_order_relaxed)};
}

std::uint64_t depot_bytes() noexcept {
  ResidentProbe p = g_depot_probe.load(std::memory_order_relaxed);
  return p != nullptr ? p() : 0;
}

}  // namespace

const char* budget_source_name(BudgetSource s) noexcept {
  switch (s) {
    case BudgetSource::kNone:
      return "none";
    case BudgetSource::kOption:
      return "option";
    case BudgetSource::kCgroup:
      return "cgroup";
    case BudgetSource::kPhysical:
      return "physical";
  }
  return "?";
}

BudgetConfig resolve_budget(std::uint64_t option, bool secure, os::MemoryLimit limit) noexcept {
  const BudgetSource derived = limit.source == os::MemoryLimitSource::kCgroup
                                   ? BudgetSource::kCgroup
                                   : BudgetSource::kPhysical;
  const std::uint64_t half = limit.bytes / 2;
  if (option == 0) return {};
  if (option == kAutoBudget || (secure && option > half)) return {half, derived};
  return {option, BudgetSource::kOption};
}

void set_depot_probe(ResidentProbe probe) noexcept {
  g_depot_probe.store(probe, std::memory_order_relaxed);
}

void MemoryBudget::init(std::uint64_t option) noexcept {
  // Only auto and a secure process's value need the limit: an explicit
  // budget (the tests' common case) reads no file.
  const bool secure = os::secure_execution();
  os::MemoryLimit limit{};
  if (option == kAutoBudget || (secure && option != 0)) limit = process_memory_limit();
  config_ = resolve_budget(option, secure, limit);
}

bool MemoryBudget::try_charge(std::uint64_t bytes) noexcept {
  const std::uint64_t now = g_resident.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  const std::uint64_t total = now + depot_bytes();
  if (config_.bytes != 0 && total > config_.bytes) {
    g_resident.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  charged_.fetch_add(bytes, std::memory_order_relaxed);
  std::uint64_t peak = g_peak.load(std::memory_order_relaxed);
  while (total > peak && !g_peak.compare_exchange_weak(peak, total, std::memory_order_relaxed)) {
  }
  return true;
}

void MemoryBudget::uncharge(std::uint64_t bytes) noexcept {
  charged_.fetch_sub(bytes, std::memory_order_relaxed);
  g_resident.fetch_sub(bytes, std::memory_order_relaxed);
}

void MemoryBudget::uncharge_all() noexcept {
  g_resident.fetch_sub(charged_.exchange(0, std::memory_order_relaxed), std::memory_order_relaxed);
}

bool MemoryBudget::has_room() const noexcept {
  return config_.bytes == 0 || process_resident() < config_.bytes / 4 * 3;
}

std::uint64_t MemoryBudget::process_resident() noexcept {
  return g_resident.load(std::memory_order_relaxed) + depot_bytes();
}

std::uint64_t MemoryBudget::process_peak() noexcept {
  return g_peak.load(std::memory_order_relaxed);
}

}  // namespace guardarena
