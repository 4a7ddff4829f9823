// Storage of the core's upward hooks and their fallbacks when none is
// installed (raw writes to stderr, then abort for findings).
#include "core/hooks.h"

#include <atomic>
#include <cstdlib>

#include "os/raw_writer.h"

namespace guardarena {
namespace {

std::atomic<FindingReporter> g_reporter{nullptr};
std::atomic<WarningWriter> g_warning{nullptr};

}  // namespace

__attribute__((visibility("hidden"))) std::atomic<StackCaptureFn> g_stack_capture{nullptr};

void set_stack_capture(StackCaptureFn fn) noexcept {
  g_stack_capture.store(fn, std::memory_order_relaxed);
}

void set_finding_reporter(FindingReporter fn) noexcept {
  g_reporter.store(fn, std::memory_order_relaxed);
}

[[noreturn]] void report_finding(const Finding& f) noexcept {
  if (FindingReporter fn = g_reporter.load(std::memory_order_relaxed)) fn(f);
  char buf[160];
  RawWriter w(buf, sizeof buf);
  w.str("guardarena: ").str(error_kind_name(f.kind)).str(" on address ").hex(f.address).ch('\n');
  w.flush_to(2);
  ::abort();
}

void set_warning_writer(WarningWriter fn) noexcept {
  g_warning.store(fn, std::memory_order_relaxed);
}

void write_warning(const char* text, std::size_t len) noexcept {
  if (WarningWriter fn = g_warning.load(std::memory_order_relaxed)) return fn(text, len);
  write_all(2, text, len);
}

}  // namespace guardarena
