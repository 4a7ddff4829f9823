// One report path for every error guardarena finds: faults on guard pages
// (fault_handler.cpp) and free-time checks (arena). Formats with RawWriter
// into fixed buffers and writes with write(2): async-signal-safe, no malloc.
//
// Report shape (text):
//   ==PID==ERROR: guardarena: <kind> on address 0x... (thread T<tid>)
//   <READ|WRITE> of ... / <what happened at free>
//   0x... is located N bytes after the M-byte block [0x..., 0x...)
//   <access/free/alloc stacks>
//   SUMMARY: guardarena: <kind> ...
//   ==PID==ABORTING
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>

#include "core/arena.h"
#include "core/finding.h"
#include "options/options.h"
#include "stack/stack_trace.h"

namespace guardarena::report {

// Takes the report-related options (log_path, report_format, exitcode,
// stack_depth, symbolizer) and installs the core's finding reporter and
// warning writer (core/hooks.h). Call once at start-up; later calls replace
// it.
void configure(const Options& options) noexcept;

// Sets up stack capture (stack_depth, depot_size): the depot and the
// per-thread caches, tens of MiB of address space. Separate from configure()
// so that a process left unguarded (no room for the arena) does not map them.
void configure_stacks(const Options& options) noexcept;

enum class Access : std::uint8_t { kUnknown, kRead, kWrite };

// A finding (core/finding.h) and how the access was made: what the report
// layer prints.
struct Report : Finding {
  Access access = Access::kUnknown;
  const std::uintptr_t* access_stack = nullptr;  // fault pc + frames, or free-site frames
  std::size_t access_depth = 0;
  std::uint32_t access_stack_id = 0;  // depot id instead of raw frames
  bool first_frame_is_pc = false;
  // Faults outside every arena: what the address looks like ("address
  // points to the zero page"), or nullptr. A string literal.
  const char* hint = nullptr;
  // Canary and poison findings: when the damage was seen ("found at exit");
  // nullptr: at deallocation or reuse. A string literal.
  const char* found_when = nullptr;
  // False for a report after which the program goes on (an on-demand heap
  // check): no ABORTING trailer.
  bool ends_process = true;
};

// Writes the report (text or JSON per configuration) to the log fd.
void write_report(const Report& r) noexcept;

// Free-time error: write the report, then abort() (or _exit(exitcode)).
[[noreturn]] void report_and_abort(const Report& r) noexcept;

// The calling thread's stack as the program sees it, for free-time reports:
// walked from the allocator entry frame when one is marked
// (stack::t_allocator_entry), else with guardarena's own innermost frames
// dropped (when it lives in a shared object of its own), so that frame #0 is
// the program's call into the allocator. Async-signal-safe.
std::size_t capture_program_stack(std::uintptr_t* pcs, std::size_t max_depth) noexcept;

// Stack depot access for reports and leak listings; nullptr when disabled.
std::uint32_t capture_stack(std::size_t skip) noexcept;
std::size_t load_stack(std::uint32_t id, std::uintptr_t* out, std::size_t max) noexcept;
// Entries, bytes and drops of the process-wide stack depot (sized once, by the
// first configure() with stack_depth > 0, from depot_size).
stack::StackDepotStats depot_stats() noexcept;

// The fd reports go to (stderr unless log_path).
int report_fd() noexcept;

// True when reports are JSON (report_format=json): every kind, exit-time
// ones included, is then written as one JSON object per line.
bool json_reports() noexcept;

// Heap check (Arena::check_heap): reports every damaged block of `arena`,
// live blocks' canaries and fast mode's quarantined poison, each with its
// size, the damaged offsets and its allocation stack; `when` ("found at
// exit") goes into each report. Returns the number of damaged blocks; ends
// nothing itself: `caller_ends_process` says whether the caller will (the
// reports' trailer says so). Allocation-free; not async-signal-safe.
std::size_t check_heap(const Arena& arena, const char* when, bool caller_ends_process) noexcept;

// Installs the SIGSEGV/SIGBUS handler on an alternate stack (idempotent).
// Faults outside every arena go to the previous handler unchanged.
void install_fault_handler() noexcept;
// Gives the calling thread an alternate signal stack if it has none.
void ensure_alt_stack() noexcept;

// Prepares a thread the shim starts for faults: an alternate signal stack in
// [alt_stack, alt_stack + alt_size) (memory of the caller's frame, which
// outlives the thread's start routine; nullptr: none fits) and the bounds of
// the thread's stack and guard region, so that an overflow of this stack is
// reported as such. Call at the start of the thread, from its own frame; may
// allocate (pthread_getattr_np). The stack size to reserve for the alternate
// stack comes from thread_alt_stack_size().
void prepare_thread_for_faults(void* alt_stack, std::size_t alt_size) noexcept;
// What prepare_thread_for_faults() wants for the alternate stack: a few
// times the CPU's minimum signal stack, enough for the report's formatter
// and symbolizer glue.
std::size_t thread_alt_stack_size() noexcept;
// Undoes the alternate stack set by prepare_thread_for_faults() before its
// memory goes away.
void forget_thread_alt_stack() noexcept;

}  // namespace guardarena::report
