// The heap check's reports (report.h: check_heap): the core finds damaged
// canaries and poison (Arena::check_heap), this file turns each finding into
// a report of the usual shape. No allocation, no exit: callers decide what a
// damaged heap ends.
#include "report/report.h"

namespace guardarena::report {
namespace {

struct CheckContext {
  const char* when;
};

void report_damage(const Finding& f, void* ctx) noexcept {
  Report r;
  static_cast<Finding&>(r) = f;
  r.found_when = static_cast<const CheckContext*>(ctx)->when;
  write_report(r);
}

}  // namespace

std::size_t check_heap(const Arena& arena, const char* when) noexcept {
  CheckContext ctx{when};
  return arena.check_heap(report_damage, &ctx);
}

}  // namespace guardarena::report
