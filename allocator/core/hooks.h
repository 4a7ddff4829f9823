// The core's calls up the stack, as hooks the layers above install: stack
// capture (the stack layer's depot), the reporter of findings and the writer
// of one-time warnings (the report layer). The core includes no header above
// it; with no hook installed it still works: no stacks, and findings and
// warnings go to stderr through a raw write.
//
// Each setter is called at configuration time; the hooks are read with
// relaxed loads on the allocation and free paths.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/finding.h"

namespace guardarena {

// Stack capture at allocation and free: returns a depot id, or 0. `skip`
// counts the core's frames above the hook (the hook's own caller included).
using StackCaptureFn = std::uint32_t (*)(std::size_t skip) noexcept;
void set_stack_capture(StackCaptureFn fn) noexcept;
// Hidden: read on every allocation and free with one PC-relative load.
extern __attribute__((visibility("hidden"))) std::atomic<StackCaptureFn> g_stack_capture;
// The installed hook's id for the calling stack, 0 without a hook. Inline:
// it runs on every allocation and free, and `skip` = 2 drops the hook's frame
// and the core function this is inlined into.
[[gnu::always_inline]] inline std::uint32_t capture_stack_id() noexcept {
  StackCaptureFn fn = g_stack_capture.load(std::memory_order_relaxed);
  return fn != nullptr ? fn(2) : 0;
}

// Reports a finding and ends the process (abort or the configured exit
// code); never returns.
using FindingReporter = void (*)(const Finding& f) noexcept;
void set_finding_reporter(FindingReporter fn) noexcept;
[[noreturn]] void report_finding(const Finding& f) noexcept;

// Writes one line of warning ("guardarena: warning: ...\n" included) where
// reports go.
using WarningWriter = void (*)(const char* text, std::size_t len) noexcept;
void set_warning_writer(WarningWriter fn) noexcept;
void write_warning(const char* text, std::size_t len) noexcept;

}  // namespace guardarena
