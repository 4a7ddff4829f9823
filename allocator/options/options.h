// guardarena::Options: the runtime configuration, generated from options.inc
// (the single place where an option is declared), plus a parser for
// "key=value:key=value" strings. The parser never allocates, so the preload
// library can run it before malloc is usable.
#pragma once

#include <cstddef>
#include <cstdint>

namespace guardarena {

class RawWriter;

enum class Mode : std::uint8_t { kFull, kFast };
enum class Backend : std::uint8_t { kAuto, kGuard, kMprotect };
enum class Exhaustion : std::uint8_t { kFallback, kFail };
enum class ReportFormat : std::uint8_t { kText, kJson };

// A fixed-capacity string option (no heap: the shim parses before malloc works).
struct Text {
  char value[256] = {};
  bool empty() const noexcept { return value[0] == '\0'; }
  const char* c_str() const noexcept { return value; }
};

struct Options {
#define GUARDARENA_OPTION(kind, type, name, def, accepted, help) type name = def;
#include "options/options.inc"
#undef GUARDARENA_OPTION
};

inline constexpr std::size_t kOptionCount = 0
#define GUARDARENA_OPTION(kind, type, name, def, accepted, help) +1
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

// Writes "name=value" for every option to `out`, for --help and print_stats.
void write_options_help(RawWriter& out) noexcept;
// Writes the README/docs Markdown table of all options.
void write_options_markdown(RawWriter& out) noexcept;

}  // namespace guardarena
