// Glue between the arena's stack hook and the process-wide stack depot: the
// arena stores only depot ids in its metadata, reports load them back.
#include "core/arena.h"
#include "report/report.h"
#include "stack/stack_trace.h"

namespace guardarena::report {
namespace {

// Constant-initialised and trivially destructible: usable from the first
// malloc to the last free at exit.
stack::StackDepot g_depot;
std::atomic<std::size_t> g_depth{0};

std::uint32_t capture_for_arena(std::size_t skip) noexcept {
  std::uintptr_t pcs[64];
  std::size_t depth = g_depth.load(std::memory_order_relaxed);
  // +1 drops this function's own frame: frame #0 is then the allocator's
  // entry point (malloc, operator new, do_allocate), as in ASan's reports.
  std::size_t n = stack::capture(pcs, depth, skip);
  return g_depot.store(pcs, n);
}

}  // namespace

void configure_stacks(const Options& o) noexcept {
  std::size_t depth = o.stack_depth > 64 ? 64 : o.stack_depth;
  g_depth.store(depth, std::memory_order_relaxed);
  if (depth == 0) {
    set_stack_capture(nullptr);
    return;
  }
  // The first configuration sizes the depot; it never moves afterwards, so
  // ids stay valid for every arena in the process.
  if (!g_depot.initialized() && !g_depot.init(o.depot_size)) {
    set_stack_capture(nullptr);
    return;
  }
  set_stack_capture(capture_for_arena);
}

std::uint32_t capture_stack(std::size_t skip) noexcept {
  return capture_for_arena(skip + 1);
}

std::size_t load_stack(std::uint32_t id, std::uintptr_t* out, std::size_t max) noexcept {
  return g_depot.initialized() ? g_depot.load(id, out, max) : 0;
}

stack::StackDepotStats depot_stats() noexcept {
  return g_depot.stats();
}

}  // namespace guardarena::report
