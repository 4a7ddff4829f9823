// Parser, defaults and documentation for the option table in options.inc.
// Must not allocate: the preload library parses GUARDARENA_OPTIONS while its
// own malloc is not ready yet.
#include <cstring>

#include "options/options.h"
#include "os/raw_writer.h"

namespace guardarena {
namespace {

struct EnumName {
  const char* name;
  std::uint8_t value;
};
template <class E>
struct EnumNames;
template <>
struct EnumNames<Mode> {
  static constexpr EnumName kNames[] = {{"full", 0}, {"fast", 1}};
};
template <>
struct EnumNames<Backend> {
  static constexpr EnumName kNames[] = {{"auto", 0}, {"guard", 1}, {"mprotect", 2}};
};
template <>
struct EnumNames<Exhaustion> {
  static constexpr EnumName kNames[] = {{"fallback", 0}, {"fail", 1}};
};
template <>
struct EnumNames<ReportFormat> {
  static constexpr EnumName kNames[] = {{"text", 0}, {"json", 1}};
};

bool equals(const char* s, std::size_t n, const char* lit) noexcept {
  return std::strlen(lit) == n && std::memcmp(s, lit, n) == 0;
}

bool parse_u64(const char* s, std::size_t n, std::uint64_t& v) noexcept {
  if (n == 0) return false;
  std::uint64_t r = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    std::uint64_t d = static_cast<std::uint64_t>(s[i] - '0');
    if (r > (UINT64_MAX - d) / 10) return false;
    r = r * 10 + d;
  }
  v = r;
  return true;
}

bool parse_size(const char* s, std::size_t n, std::uint64_t& v) noexcept {
  unsigned shift = 0;
  if (n > 0) {
    char c = s[n - 1];
    if (c == 'b' || c == 'B') {  // accept "1MB"/"1KiB"-less forms: strip a trailing B
      --n;
      if (n > 0 && (s[n - 1] == 'i')) --n;
      c = n > 0 ? s[n - 1] : '\0';
    }
    switch (c) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      case 't':
      case 'T':
        shift = 40;
        break;
      default:
        break;
    }
    if (shift != 0) --n;
  }
  std::uint64_t base = 0;
  if (!parse_u64(s, n, base)) return false;
  if (shift != 0 && base > (UINT64_MAX >> shift)) return false;
  v = base << shift;
  return true;
}

bool parse_value(bool& out, const char* s, std::size_t n) noexcept {
  if (equals(s, n, "1") || equals(s, n, "true") || equals(s, n, "yes")) {
    out = true;
    return true;
  }
  if (equals(s, n, "0") || equals(s, n, "false") || equals(s, n, "no")) {
    out = false;
    return true;
  }
  return false;
}

template <class E>
bool parse_enum(E& out, const char* s, std::size_t n) noexcept {
  for (const EnumName& e : EnumNames<E>::kNames) {
    if (equals(s, n, e.name)) {
      out = static_cast<E>(e.value);
      return true;
    }
  }
  return false;
}

template <class E>
const char* enum_name(E v) noexcept {
  for (const EnumName& e : EnumNames<E>::kNames) {
    if (e.value == static_cast<std::uint8_t>(v)) return e.name;
  }
  return "?";
}

bool parse_text(Text& out, const char* s, std::size_t n) noexcept {
  if (n >= sizeof out.value) return false;
  std::memcpy(out.value, s, n);
  out.value[n] = '\0';
  return true;
}

bool parse_budget(const char* s, std::size_t n, std::uint64_t& v) noexcept {
  if (equals(s, n, "auto")) {
    v = kAutoBudget;
    return true;
  }
  return parse_size(s, n, v) && v != kAutoBudget;
}

// Kind-specific parse: Size and Count share std::uint64_t, so dispatch on kind.
#define GUARDARENA_PARSE_Bool(field, s, n) parse_value(field, s, n)
#define GUARDARENA_PARSE_Size(field, s, n) parse_size(s, n, field)
#define GUARDARENA_PARSE_Budget(field, s, n) parse_budget(s, n, field)
#define GUARDARENA_PARSE_Count(field, s, n) parse_u64(s, n, field)
#define GUARDARENA_PARSE_Enum(field, s, n) parse_enum(field, s, n)
#define GUARDARENA_PARSE_Text(field, s, n) parse_text(field, s, n)

void format_size(std::uint64_t v, RawWriter& out) noexcept {
  const char* suffix = "TGMK";
  for (unsigned shift = 40, i = 0; shift >= 10; shift -= 10, ++i) {
    if (v != 0 && v % (1ull << shift) == 0) {
      out.dec(v >> shift).ch(suffix[i]);
      return;
    }
  }
  out.dec(v);
}

void format_field(bool v, RawWriter& out, const char*) noexcept {
  out.str(v ? "1" : "0");
}
void format_field(std::uint64_t v, RawWriter& out, const char* kind) noexcept {
  if (std::strcmp(kind, "Budget") == 0 && v == kAutoBudget) {
    out.str("auto");
  } else if (std::strcmp(kind, "Size") == 0 || std::strcmp(kind, "Budget") == 0) {
    format_size(v, out);
  } else {
    out.dec(v);
  }
}
void format_field(const Text& v, RawWriter& out, const char*) noexcept {
  out.str(v.c_str());
}
template <class E>
void format_field(E v, RawWriter& out, const char*) noexcept {
  out.str(enum_name(v));
}

constexpr OptionInfo kTable[] = {
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) {#name, #kind, accepted, help},
#include "options/options.inc"
#undef GUARDARENA_OPTION
};
static_assert(sizeof kTable / sizeof kTable[0] == kOptionCount);

bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void set_error(char* error, std::size_t cap, const char* key, std::size_t key_len, const char* what,
               const char* accepted) noexcept {
  if (error == nullptr || cap == 0) return;
  RawWriter w(error, cap - 1);
  w.str("guardarena: ");
  if (key != nullptr) {
    w.str("option '").chars(key, key_len).str("': ");
  }
  w.str(what);
  if (accepted != nullptr) w.str(" (accepted: ").str(accepted).ch(')');
  error[w.size()] = '\0';
}

bool check_rules(const Options& o, char* error, std::size_t cap) noexcept {
  if (o.alignment == 0 || (o.alignment & (o.alignment - 1)) != 0 || o.alignment > 4096) {
    set_error(error, cap, "alignment", 9, "must be a power of two from 1 to 4096", nullptr);
    return false;
  }
  if (o.sample_rate == 0) {
    set_error(error, cap, "sample_rate", 11, "must be at least 1", nullptr);
    return false;
  }
  if (o.stack_depth > 64) {
    set_error(error, cap, "stack_depth", 11, "must be at most 64", nullptr);
    return false;
  }
  if (o.exitcode > 255) {
    set_error(error, cap, "exitcode", 8, "must be at most 255", nullptr);
    return false;
  }
  if (o.max_size != 0 && o.max_size < o.min_size) {
    set_error(error, cap, "max_size", 8, "is smaller than min_size", nullptr);
    return false;
  }
  if (o.quarantine_slots > (1u << 24)) {
    set_error(error, cap, "quarantine_slots", 16, "must be at most 16777216", nullptr);
    return false;
  }
  return true;
}

}  // namespace

const OptionInfo* option_table() noexcept {
  return kTable;
}

void format_value(const Options& o, std::size_t index, RawWriter& out) noexcept {
  std::size_t i = 0;
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) \
  if (i++ == index) {                                            \
    format_field(o.name, out, #kind);                            \
    return;                                                      \
  }
#include "options/options.inc"
#undef GUARDARENA_OPTION
}

void format_default(std::size_t index, RawWriter& out) noexcept {
  static const Options kDefaults{};
  format_value(kDefaults, index, out);
}

bool parse_options(const char* text, Options& out, char* error, std::size_t error_cap) noexcept {
  if (error != nullptr && error_cap > 0) error[0] = '\0';
  if (text == nullptr) return check_rules(out, error, error_cap);
  const char* p = text;
  while (*p != '\0') {
    while (*p == ':' || *p == ',' || is_space(*p)) ++p;
    if (*p == '\0') break;
    const char* item = p;
    while (*p != '\0' && *p != ':' && *p != ',') ++p;
    const char* item_end = p;
    while (item_end > item && is_space(item_end[-1])) --item_end;
    const char* eq = item;
    while (eq < item_end && *eq != '=') ++eq;
    const char* key = item;
    std::size_t key_len = static_cast<std::size_t>(eq - item);
    while (key_len > 0 && is_space(key[key_len - 1])) --key_len;
    if (eq == item_end) {
      set_error(error, error_cap, key, key_len, "expected name=value", nullptr);
      return false;
    }
    const char* val = eq + 1;
    while (val < item_end && is_space(*val)) ++val;
    std::size_t val_len = static_cast<std::size_t>(item_end - val);
    bool known = false;
    bool ok = false;
    const char* accepted_values = nullptr;
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) \
  if (!known && equals(key, key_len, #name)) {                   \
    known = true;                                                \
    accepted_values = accepted;                                  \
    ok = GUARDARENA_PARSE_##kind(out.name, val, val_len);        \
  }
#include "options/options.inc"
#undef GUARDARENA_OPTION
    if (!known) {
      set_error(error, error_cap, key, key_len, "unknown option; help=1 lists them", nullptr);
      return false;
    }
    if (!ok) {
      char msg[320];
      RawWriter w(msg, sizeof msg - 1);
      w.str("bad value '").chars(val, val_len < 200 ? val_len : 200).ch('\'');
      msg[w.size()] = '\0';
      set_error(error, error_cap, key, key_len, msg, accepted_values);
      return false;
    }
  }
  return check_rules(out, error, error_cap);
}

void write_options_help(RawWriter& out) noexcept {
  out.str("guardarena options (GUARDARENA_OPTIONS=\"name=value:name=value\"):\n");
  for (std::size_t i = 0; i < kOptionCount; ++i) {
    out.str("  ").str(kTable[i].name).ch('=');
    format_default(i, out);
    out.str("  [").str(kTable[i].accepted).str("]\n      ").str(kTable[i].help).ch('\n');
  }
}

namespace {
// Markdown table cells cannot hold a bare '|'.
void md_cell(RawWriter& out, const char* s) noexcept {
  for (; *s != '\0'; ++s) {
    if (*s == '|') out.ch('\\');
    out.ch(*s);
  }
}
}  // namespace

void write_options_markdown(RawWriter& out) noexcept {
  out.str("| option | default | accepted | meaning |\n|---|---|---|---|\n");
  for (std::size_t i = 0; i < kOptionCount; ++i) {
    out.str("| `").str(kTable[i].name).str("` | `");
    std::size_t before = out.size();
    format_default(i, out);
    if (out.size() == before) out.str("\"\"");
    out.str("` | ");
    md_cell(out, kTable[i].accepted);
    out.str(" | ");
    md_cell(out, kTable[i].help);
    out.str(" |\n");
  }
}

}  // namespace guardarena
