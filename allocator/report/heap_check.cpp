// The heap check's reports (report.h: check_heap): the core finds damaged
// canaries and poison (Arena::check_heap), this file turns each finding into
// a report of the usual shape. No allocation, no exit: callers decide what a
// damaged heap ends.
#include "report/report.h"

namespace guardarena::report {
namespace {

struct CheckContext {
  const char* when;
  bool ends_process;
};

void report_damage(const Finding& f, void* ctx) noexcept {
  Report r;
  static_cast<Finding&>(r) = f;
  const auto* c = static_cast<const CheckContext*>(ctx);
  r.found_when = c->when;
  r.ends_process = c->ends_process;
  write_report(r);
}

}  // namespace

std::size_t check_heap(const Arena& arena, const char* when, bool caller_ends_process) noexcept {
  CheckContext ctx{when, caller_ends_process};
  return arena.check_heap(report_damage, &ctx);
}

}  // namespace guardarena::report
