// The heap check's reports (report.h: check_heap): the core finds damaged
// canaries and poison (Arena::check_heap), this file turns each finding into
// a report of the usual shape. No allocation, no exit: callers decide what a
// damaged heap ends.
//
// The core reads every live block's canaries in place. Another thread's free
// would change a block under the reads, and in full mode make its pages
// inaccessible (a fault inside the check), so the other threads are paused
// for the walk (os/world_stop.h). Reports are written once they run again:
// symbolizing takes locks (the loader's) a paused thread may hold.
#include <unistd.h>

#include <algorithm>

#include "os/os_linux.h"
#include "os/raw_writer.h"
#include "os/world_stop.h"
#include "report/report.h"

namespace guardarena::report {
namespace {

// Findings held while the threads are paused. Mapped with no reserve:
// untouched pages of a big capacity cost nothing.
struct HeldFindings {
  static constexpr std::size_t kCapacity = 65536;
  Finding* items = nullptr;
  std::size_t count = 0;  // found, held or not
};

void hold_finding(const Finding& f, void* ctx) noexcept {
  auto* held = static_cast<HeldFindings*>(ctx);
  if (held->items != nullptr && held->count < HeldFindings::kCapacity) held->items[held->count] = f;
  ++held->count;
}

void report_damage(const Finding& f, const char* when, bool ends_process) noexcept {
  Report r;
  static_cast<Finding&>(r) = f;
  r.found_when = when;
  r.ends_process = ends_process;
  write_report(r);
}

// Past the held findings' capacity the count still says how bad it is.
void report_unshown_damage(std::size_t n) noexcept {
  char buf[160];
  RawWriter w(buf, sizeof buf);
  if (json_reports()) {
    w.str("{\"tool\":\"guardarena\",\"pid\":").dec(static_cast<std::uint64_t>(::getpid()));
    w.str(",\"kind\":\"heap-check-overflow\",\"not_reported\":").dec(n).str("}\n");
  } else {
    w.str("guardarena: ").dec(n).str(" more damaged blocks found, not reported\n");
  }
  w.flush_to(report_fd());
}

}  // namespace

std::size_t check_heap(const Arena& arena, const char* when, bool caller_ends_process) noexcept {
  const std::size_t bytes = os::page_ceil(HeldFindings::kCapacity * sizeof(Finding));
  HeldFindings held;
  held.items = static_cast<Finding*>(os::map_internal(bytes, "guardarena:heap-check"));
  os::WorldStop world;
  world.stop();
  const std::size_t damaged = arena.check_heap(hold_finding, &held);
  world.resume();
  const std::size_t shown =
      held.items != nullptr ? std::min(held.count, HeldFindings::kCapacity) : 0;
  for (std::size_t i = 0; i < shown; ++i) report_damage(held.items[i], when, caller_ends_process);
  if (shown < damaged) report_unshown_damage(damaged - shown);
  if (held.items != nullptr) os::release(held.items, bytes);
  return damaged;
}

}  // namespace guardarena::report
