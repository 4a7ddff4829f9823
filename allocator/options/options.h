// guardarena::Options: the runtime configuration, generated from options.inc
// (the single place where an option is declared), plus a parser for
// "key=value:key=value" strings. The parser never allocates, so the preload
// library can run it before malloc is usable.
#pragma once

#include <cstddef>
#include <cstdint>

// The default of reserve_size. 64 GiB of PROT_NONE address space costs a
// kernel nothing until used; a user-mode emulator (qemu-user) tracks every
// reserved page and spends seconds on it, so the emulated arm64 test build
// lowers it (CMake: GUARDARENA_DEFAULT_RESERVE_BYTES).
#ifndef GUARDARENA_DEFAULT_RESERVE_BYTES
#define GUARDARENA_DEFAULT_RESERVE_BYTES (64ull << 30)
#endif

namespace guardarena {

class RawWriter;

enum class Mode : std::uint8_t { kFull, kFast };
enum class Backend : std::uint8_t { kAuto, kGuard, kMprotect };
enum class Exhaustion : std::uint8_t { kFallback, kFail };
enum class ReportFormat : std::uint8_t { kText, kJson };

// max_guarded_memory=auto: derived at start-up from the memory the process
// may use (core/memory_budget.h).
inline constexpr std::uint64_t kAutoBudget = UINT64_MAX;

// A fixed-capacity string option (no heap: the shim parses before malloc works).
struct Text {
  char value[256] = {};
  bool empty() const noexcept { return value[0] == '\0'; }
  const char* c_str() const noexcept { return value; }
  friend bool operator==(const Text& a, const Text& b) noexcept;
};

struct Options {
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) type name = def;
#include "options/options.inc"
#undef GUARDARENA_OPTION
};

inline constexpr std::size_t kOptionCount = 0
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) +1
#include "options/options.inc"
#undef GUARDARENA_OPTION
    ;

// One row of the option table, for help output and documentation.
struct OptionInfo {
  const char* name;
  const char* kind;
  const char* accepted;
  const char* help;
};
// The table in declaration order, kOptionCount rows.
const OptionInfo* option_table() noexcept;
// The default value of option `index` rendered as text (e.g. "256M", "full").
void format_default(std::size_t index, RawWriter& out) noexcept;
// The value of option `index` in `o`, rendered as format_default() does.
void format_value(const Options& o, std::size_t index, RawWriter& out) noexcept;

// Parses `text` ("name=value" pairs separated by ':' or ',', whitespace
// ignored around them) on top of `out`. On error returns false, leaves `out`
// partially updated and writes one line naming the key and what is accepted
// into `error` (NUL-terminated, truncated to error_cap). Also checks the rules
// between options (e.g. alignment a power of two). Thread-safe, no allocation.
bool parse_options(const char* text, Options& out, char* error, std::size_t error_cap) noexcept;

// What a secure-execution process does with an option its caller set (the
// `secure` column of options.inc).
enum class SecurePolicy : std::uint8_t { kKeep, kDrop, kCap };
SecurePolicy secure_policy(std::size_t index) noexcept;

// Applies the secure-execution policy to options parsed from a caller's
// environment: every Drop option not at its default returns to it, every Cap
// option above its default comes down to it. Writes the names of the options
// it changed to `changed` (", "-separated) and returns how many. Pure: the
// caller decides whether the process is in secure-execution mode.
std::size_t apply_secure_policy(Options& o, RawWriter& changed) noexcept;

// Writes "name=value" for every option to `out`, for --help and print_stats.
void write_options_help(RawWriter& out) noexcept;
// Writes the README/docs Markdown table of all options.
void write_options_markdown(RawWriter& out) noexcept;

}  // namespace guardarena
