// Formats and writes every guardarena report (fault or free-time) in one
// shape. Async-signal-safe: fixed buffers, RawWriter, write(2); no malloc, no
// stdio, no locks. Symbolization goes through report/symbolizer.h.
#include "report/report.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/hooks.h"
#include "os/raw_writer.h"
#include "os/secure_execution.h"
#include "os/thread.h"
#include "report/stack_printer.h"
#include "stack/stack_trace.h"

namespace guardarena::report {
namespace {

struct Config {
  int fd = 2;
  bool fd_opened = false;
  ReportFormat format = ReportFormat::kText;
  unsigned exitcode = 0;
  Text log_path;
  std::size_t depth = 16;
  bool symbolize = true;
  Text symbolizer_path;
  // Secure execution: no symbolizer child, no addresses in any report.
  bool secure = false;
};
Config g_config;
int g_saved_stderr = -1;
std::atomic<bool> g_reporting{false};

// `first_frame`: see StackPrintOptions.
void write_frames(RawWriter& w, const char* title, std::uint32_t tid, const std::uintptr_t* pcs,
                  std::size_t n, bool first_is_pc, char* first_frame = nullptr,
                  std::size_t first_frame_cap = 0) noexcept {
  w.str(title);
  if (tid != 0) w.str(" by thread T").dec(tid);
  w.str(" here:\n");
  if (n == 0) {
    w.str("    <no stack: stack_depth=0 or depot full>\n");
    return;
  }
  StackPrintOptions po;
  po.symbolize = g_config.symbolize;
  po.symbolizer_path =
      g_config.symbolizer_path.empty() ? nullptr : g_config.symbolizer_path.c_str();
  po.first_is_pc = first_is_pc;
  po.hide_addresses = g_config.secure;
  po.first_frame = first_frame;
  po.first_frame_cap = first_frame_cap;
  print_frames(w, pcs, n, po);
}

void write_stack_id(RawWriter& w, const char* title, std::uint32_t tid, std::uint32_t id,
                    char* first_frame = nullptr, std::size_t first_frame_cap = 0) noexcept {
  std::uintptr_t pcs[64];
  std::size_t n = id != 0 ? load_stack(id, pcs, 64) : 0;
  write_frames(w, title, tid, pcs, n, false, first_frame, first_frame_cap);
}

void describe_location(RawWriter& w, const Report& r) noexcept {
  const BlockInfo& b = r.block;
  w.address(r.address).str(" is located ");
  std::int64_t d = r.distance;
  std::uint64_t s = b.size;
  if (d < 0) {
    w.dec(static_cast<std::uint64_t>(-d)).str(" bytes before");
  } else if (static_cast<std::uint64_t>(d) >= (s == 0 ? 1 : s)) {
    w.dec(static_cast<std::uint64_t>(d) - s).str(" bytes after");
  } else {
    w.dec(static_cast<std::uint64_t>(d)).str(" bytes inside");
  }
  w.str(" the ")
      .str(r.kind == ErrorKind::kHeapUseAfterFree || r.kind == ErrorKind::kWriteAfterFree ? "freed "
                                                                                          : "")
      .dec(s)
      .str("-byte block [")
      .address(b.block)
      .str(", ")
      .address(b.block + s)
      .str(") (alignment ")
      .dec(b.align)
      .str(", allocated with ")
      .str(alloc_kind_name(static_cast<AllocKind>(b.alloc_kind)))
      .str(")\n");
}

void write_headline(RawWriter& w, const Report& r) noexcept {
  const BlockInfo& b = r.block;
  auto dk = static_cast<AllocKind>(r.dealloc_kind);
  switch (r.kind) {
    case ErrorKind::kDoubleFree:
      w.str("attempting double-free of ")
          .address(r.address)
          .str(" (")
          .dec(b.size)
          .str("-byte block) in ")
          .str(dealloc_kind_name(dk))
          .ch('\n');
      break;
    case ErrorKind::kInvalidFree:
      w.str("attempting ").str(dealloc_kind_name(dk)).str(" on address ").address(r.address);
      if (r.has_block) {
        w.str(", which is ")
            .sdec(r.distance)
            .str(" bytes from the start of the live ")
            .dec(b.size)
            .str("-byte block at ")
            .address(b.block)
            .str(" (interior pointer)\n");
      } else {
        w.str(", which was not returned by this allocator\n");
      }
      break;
    case ErrorKind::kAllocDeallocMismatch:
      w.str("alloc-dealloc mismatch (")
          .str(alloc_kind_name(static_cast<AllocKind>(b.alloc_kind)))
          .str(" vs ")
          .str(dealloc_kind_name(dk))
          .str(") on ")
          .address(r.address)
          .ch('\n');
      break;
    case ErrorKind::kSizeMismatch:
      w.str(dealloc_kind_name(dk)).str(" called with size ").dec(r.expected_size);
      if (r.expected_align != 0) w.str(" and alignment ").dec(r.expected_align);
      w.str(" for the ")
          .dec(b.size)
          .str("-byte block at ")
          .address(b.block)
          .str(" (allocated with alignment ")
          .dec(b.align)
          .str(")\n");
      break;
    case ErrorKind::kSlackOverflow:
      w.dec(r.bad_bytes)
          .str(" bytes written past the end of the ")
          .dec(b.size)
          .str("-byte block at ")
          .address(b.block)
          .str(" (slack canary damaged, ")
          .str(r.found_when != nullptr ? r.found_when : "found at deallocation")
          .str("; damaged offsets ")
          .dec(b.size == 0 ? 1 : b.size)
          .str(" to ")
          .dec((b.size == 0 ? 1 : b.size) + r.bad_bytes - 1)
          .str(")\n");
      break;
    case ErrorKind::kSlackUnderflow:
      w.dec(r.bad_bytes)
          .str(" bytes written before the start of the ")
          .dec(b.size)
          .str("-byte block at ")
          .address(b.block)
          .str(" (slack canary damaged, ")
          .str(r.found_when != nullptr ? r.found_when : "found at deallocation")
          .str("; damaged offsets -")
          .dec(r.bad_bytes)
          .str(" to -1)\n");
      break;
    case ErrorKind::kWriteAfterFree:
      w.str("write after free: byte ")
          .sdec(r.distance)
          .str(" of the freed ")
          .dec(b.size)
          .str("-byte block at ")
          .address(b.block)
          .str(" changed (")
          .str(r.found_when != nullptr ? r.found_when : "poison checked when the slot was reused")
          .str(")\n");
      break;
    case ErrorKind::kSegvUnknownAddress:
    case ErrorKind::kBusUnknownAddress:
    case ErrorKind::kStackOverflow:
      w.str(r.access == Access::kWrite  ? "WRITE"
            : r.access == Access::kRead ? "READ"
                                        : "UNKNOWN")
          .str(" memory access at ")
          .address(r.address);
      if (r.hint != nullptr) w.str("; hint: ").str(r.hint);
      w.ch('\n');
      break;
    default:
      w.str(r.access == Access::kWrite  ? "WRITE"
            : r.access == Access::kRead ? "READ"
                                        : "ACCESS")
          .str(" at ")
          .address(r.address)
          .ch('\n');
      if (r.has_block) describe_location(w, r);
      if (r.kind == ErrorKind::kUseAfterRelease) {
        w.address(r.address).str(
            " is in memory the arena handed out before its release(): every block there was "
            "freed at once\n");
      }
      break;
  }
}

void write_text(const Report& r) noexcept {
  static char buf[32768];  // one report at a time (g_reporting)
  RawWriter w(buf, sizeof buf);
  w.hide_addresses(g_config.secure);
  auto pid = static_cast<std::uint64_t>(::getpid());
  w.str("==")
      .dec(pid)
      .str("==ERROR: guardarena: ")
      .str(error_kind_name(r.kind))
      .str(r.kind == ErrorKind::kSegvUnknownAddress || r.kind == ErrorKind::kBusUnknownAddress
               ? " on unknown address "
               : " on address ")
      .address(r.address)
      .str(" (thread T")
      .dec(os::current_tid())
      .str(")\n");
  write_headline(w, r);
  const char* here =
      r.kind == ErrorKind::kDoubleFree || r.kind == ErrorKind::kInvalidFree ||
              r.kind == ErrorKind::kAllocDeallocMismatch || r.kind == ErrorKind::kSizeMismatch ||
              r.kind == ErrorKind::kSlackOverflow || r.kind == ErrorKind::kSlackUnderflow
          ? "deallocated"
      : r.kind == ErrorKind::kWriteAfterFree ? "reused"
                                             : "accessed";
  // The SUMMARY line names where the program was: frame #0 of this stack.
  static char first_frame[512];
  first_frame[0] = '\0';
  if (r.access_stack != nullptr) {
    write_frames(w, here, os::current_tid(), r.access_stack, r.access_depth, r.first_frame_is_pc,
                 first_frame, sizeof first_frame);
  } else if (r.access_stack_id != 0) {
    write_stack_id(w, here, os::current_tid(), r.access_stack_id, first_frame, sizeof first_frame);
  }
  if (r.has_block) {
    const BlockInfo& b = r.block;
    bool freed = r.kind == ErrorKind::kDoubleFree || r.kind == ErrorKind::kHeapUseAfterFree ||
                 r.kind == ErrorKind::kWriteAfterFree;
    if (freed && b.free_tid != 0) {
      write_stack_id(w, r.kind == ErrorKind::kDoubleFree ? "first freed" : "freed", b.free_tid,
                     b.free_stack);
    }
    // No access or free stack (a heap check): SUMMARY names the allocation.
    if (first_frame[0] == '\0') {
      write_stack_id(w, "allocated", b.alloc_tid, b.alloc_stack, first_frame, sizeof first_frame);
    } else {
      write_stack_id(w, "allocated", b.alloc_tid, b.alloc_stack);
    }
  }
  w.str("SUMMARY: guardarena: ").str(error_kind_name(r.kind));
  if (r.has_block) w.str(" (").dec(r.block.size).str("-byte block)");
  if (first_frame[0] != '\0') w.str(" in ").str(first_frame);
  w.ch('\n');
  if (r.ends_process) w.str("==").dec(pid).str("==ABORTING\n");
  w.flush_to(g_config.fd);
}

void json_frames(RawWriter& w, const std::uintptr_t* pcs, std::size_t n,
                 bool first_is_pc) noexcept {
  w.ch('[');
  StackPrintOptions po;
  po.symbolize = g_config.symbolize;
  po.symbolizer_path =
      g_config.symbolizer_path.empty() ? nullptr : g_config.symbolizer_path.c_str();
  po.first_is_pc = first_is_pc;
  po.json = true;
  po.hide_addresses = g_config.secure;
  print_frames(w, pcs, n, po);
  w.ch(']');
}

void json_stack_id(RawWriter& w, std::uint32_t id) noexcept {
  std::uintptr_t pcs[64];
  std::size_t n = id != 0 ? load_stack(id, pcs, 64) : 0;
  json_frames(w, pcs, n, false);
}

void write_json(const Report& r) noexcept {
  static char buf[65536];
  static char line[1024];
  RawWriter w(buf, sizeof buf);
  w.hide_addresses(g_config.secure);
  w.str("{\"tool\":\"guardarena\",\"pid\":").dec(static_cast<std::uint64_t>(::getpid()));
  w.str(",\"kind\":");
  w.json_string(error_kind_name(r.kind));
  w.str(",\"address\":\"").address(r.address).str("\",\"access\":");
  w.json_string(r.access == Access::kWrite  ? "WRITE"
                : r.access == Access::kRead ? "READ"
                                            : "UNKNOWN");
  w.str(",\"thread\":").dec(os::current_tid());
  if (r.hint != nullptr) {
    w.str(",\"hint\":");
    w.json_string(r.hint);
  }
  // The same human sentence the text report prints, for CI logs.
  RawWriter d(line, sizeof line - 1);
  d.hide_addresses(g_config.secure);
  write_headline(d, r);
  line[d.size() > 0 ? d.size() - 1 : 0] = '\0';
  w.str(",\"description\":");
  w.json_string(line);
  if (r.has_block) {
    const BlockInfo& b = r.block;
    w.str(",\"block\":{\"address\":\"")
        .address(b.block)
        .str("\",\"size\":")
        .dec(b.size)
        .str(",\"alignment\":")
        .dec(b.align)
        .str(",\"allocated_with\":");
    w.json_string(alloc_kind_name(static_cast<AllocKind>(b.alloc_kind)));
    w.str(",\"alloc_thread\":").dec(b.alloc_tid).str(",\"free_thread\":").dec(b.free_tid).str("}");
    w.str(",\"offset\":").sdec(r.distance);
  }
  w.str(",\"stacks\":{\"access\":");
  if (r.access_stack != nullptr) {
    json_frames(w, r.access_stack, r.access_depth, r.first_frame_is_pc);
  } else {
    json_stack_id(w, r.access_stack_id);
  }
  if (r.has_block) {
    w.str(",\"alloc\":");
    json_stack_id(w, r.block.alloc_stack);
    w.str(",\"free\":");
    json_stack_id(w, r.block.free_stack);
  }
  w.str("}}\n");
  w.flush_to(g_config.fd);
}

[[noreturn]] void report_finding_and_abort(const Finding& f) noexcept {
  Report r;
  static_cast<Finding&>(r) = f;
  report_and_abort(r);
}

void write_warning_line(const char* text, std::size_t len) noexcept {
  write_all(report_fd(), text, len);
}

}  // namespace

void configure(const Options& o) noexcept {
  g_config.format = o.report_format;
  g_config.exitcode = static_cast<unsigned>(o.exitcode);
  g_config.log_path = o.log_path;
  g_config.depth = o.stack_depth;
  g_config.symbolize = o.symbolize;
  g_config.symbolizer_path = o.symbolizer_path;
  g_config.secure = os::secure_execution();
  if (g_config.secure) {
    // Whatever the options say: a log file would be created with the
    // program's privileges at a place its caller chose (the symbolizer
    // child is refused in symbolizer.cpp).
    g_config.log_path = Text{};
  }
  g_config.fd = 2;
  g_config.fd_opened = false;
  // Some programs close stderr on the way out (coreutils' close_stdout): keep
  // a copy, used only when fd 2 is gone, so exit-time reports (leaks) are not
  // lost.
  if (g_saved_stderr < 0) g_saved_stderr = ::fcntl(2, F_DUPFD_CLOEXEC, 100);
  set_finding_reporter(report_finding_and_abort);
  set_warning_writer(write_warning_line);
}

int report_fd() noexcept {
  if (!g_config.log_path.empty() && !g_config.fd_opened) {
    // "<prefix>.<pid>", opened at report time (open is async-signal-safe) so
    // forked children write their own file.
    char path[320];
    RawWriter w(path, sizeof path - 1);
    w.str(g_config.log_path.c_str()).ch('.').dec(static_cast<std::uint64_t>(::getpid()));
    path[w.size()] = '\0';
    int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      g_config.fd = fd;
      g_config.fd_opened = true;
    }
  }
  if (g_config.log_path.empty()) {
    g_config.fd = ::fcntl(2, F_GETFD) >= 0 || g_saved_stderr < 0 ? 2 : g_saved_stderr;
  }
  return g_config.fd;
}

bool json_reports() noexcept {
  return g_config.format == ReportFormat::kJson;
}

void write_report(const Report& r) noexcept {
  report_fd();
  if (g_config.format == ReportFormat::kJson) {
    write_json(r);
  } else {
    write_text(r);
  }
}

[[noreturn]] void report_and_abort(const Report& r) noexcept {
  // Report each error once: a second error while reporting (another thread,
  // or a fault inside the report) goes straight to abort.
  if (!g_reporting.exchange(true)) {
    if (r.access_stack == nullptr && r.access_stack_id == 0 && g_config.depth > 0) {
      // Free-time errors: the deallocation site is the current stack, from
      // the program's side (guardarena's own frames are not part of it).
      std::uintptr_t pcs[64];
      Report with_stack = r;
      with_stack.access_depth =
          capture_program_stack(pcs, g_config.depth > 64 ? 64 : g_config.depth);
      with_stack.access_stack = pcs;
      write_report(with_stack);
    } else {
      write_report(r);
    }
  }
  if (g_config.exitcode != 0) ::_exit(static_cast<int>(g_config.exitcode));
  // abort() runs SIGABRT's default action: a core dump and the usual status.
  ::signal(SIGABRT, SIG_DFL);
  ::abort();
}

bool begin_report() noexcept {
  return !g_reporting.exchange(true);
}
unsigned configured_exitcode() noexcept {
  return g_config.exitcode;
}
std::size_t configured_depth() noexcept {
  return g_config.depth;
}

}  // namespace guardarena::report
