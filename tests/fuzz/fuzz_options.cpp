// libFuzzer harness for the allocation-free options parser
// (guardarena::parse_options(const char*, Options&, char*, size_t)).
//
// Properties checked on arbitrary bytes:
//   - it never crashes, reads past the text or writes past the error buffer
//     (the buffer is heap-allocated with the exact capacity, so ASan sees one
//     byte too many);
//   - the error text is NUL-terminated within the capacity, empty on success
//     and, on failure with room to spare, names a key ("option '<key>'") that
//     is either in the input or the option a cross-option rule is about;
//   - parsing is deterministic: the same text on the same defaults gives
//     equal options;
//   - round trip: the parsed options written back as "name=value:..." text
//     (sizes with K/M/G/T suffixes where exact) parse to equal options, from
//     the defaults and on top of themselves.
// Must not depend on anything but the options layer: it runs millions of
// inputs a minute.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "options/options.h"

namespace {

using guardarena::Backend;
using guardarena::Exhaustion;
using guardarena::Mode;
using guardarena::Options;
using guardarena::ReportFormat;
using guardarena::Text;

[[noreturn]] void fail(const char* what, const std::string& text, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_options: %s\n  input: '%s'\n  %s\n", what, text.c_str(),
               detail.c_str());
  std::abort();
}

// Writers for each option kind, in the syntax the parser accepts.
void put(std::string& out, bool v, const char*) {
  out += v ? "1" : "0";
}
void put(std::string& out, std::uint64_t v, const char* kind) {
  const bool budget = std::strcmp(kind, "Budget") == 0;
  if (budget && v == guardarena::kAutoBudget) {
    out += "auto";
    return;
  }
  if ((budget || std::strcmp(kind, "Size") == 0) && v != 0) {
    static const char kSuffix[] = "TGMK";
    for (unsigned shift = 40, i = 0; shift >= 10; shift -= 10, ++i) {
      if (v % (std::uint64_t{1} << shift) == 0) {
        out += std::to_string(v >> shift);
        out += kSuffix[i];
        return;
      }
    }
  }
  out += std::to_string(v);
}
void put(std::string& out, const Text& v, const char*) {
  out += v.c_str();
}
void put(std::string& out, Mode v, const char*) {
  out += v == Mode::kFast ? "fast" : "full";
}
void put(std::string& out, Backend v, const char*) {
  out += v == Backend::kGuard ? "guard" : v == Backend::kMprotect ? "mprotect" : "auto";
}
void put(std::string& out, Exhaustion v, const char*) {
  out += v == Exhaustion::kFail ? "fail" : "fallback";
}
void put(std::string& out, ReportFormat v, const char*) {
  out += v == ReportFormat::kJson ? "json" : "text";
}

bool same(bool a, bool b) {
  return a == b;
}
bool same(std::uint64_t a, std::uint64_t b) {
  return a == b;
}
bool same(const Text& a, const Text& b) {
  return std::strcmp(a.value, b.value) == 0;
}
template <class E>
bool same(E a, E b) {
  return a == b;
}

// Field by field, through the same table the struct is generated from, so a
// new option is compared without touching this file.
std::string first_difference(const Options& a, const Options& b) {
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) \
  if (!same(a.name, b.name)) return #name;
#include "options/options.inc"
#undef GUARDARENA_OPTION
  return "";
}

std::string serialize(const Options& o) {
  std::string out;
#define GUARDARENA_OPTION(kind, type, name, def, accepted, secure, help) \
  out += #name "=";                                                      \
  put(out, o.name, #kind);                                               \
  out += ':';
#include "options/options.inc"
#undef GUARDARENA_OPTION
  return out;
}

bool is_option_name(const std::string& key) {
  const guardarena::OptionInfo* t = guardarena::option_table();
  for (std::size_t i = 0; i < guardarena::kOptionCount; ++i) {
    if (key == t[i].name) return true;
  }
  return false;
}

// Parses with an error buffer of exactly `cap` bytes on the heap and checks
// the buffer contract. Returns the parse result; `error` gets the text.
bool parse_checked(const std::string& text, Options& o, std::size_t cap, std::string& error) {
  char* err = cap == 0 ? nullptr : new char[cap];
  if (err != nullptr) std::memset(err, 'X', cap);
  bool ok = guardarena::parse_options(text.c_str(), o, err, cap);
  error.clear();
  if (err != nullptr) {
    const void* nul = std::memchr(err, '\0', cap);
    if (nul == nullptr) fail("error text is not NUL-terminated within its capacity", text);
    error.assign(err);
    delete[] err;
  }
  if (ok && !error.empty()) fail("successful parse left an error text", text, error);
  if (!ok && cap > 1 && error.empty()) fail("failed parse left no error text", text);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Text up to the first NUL, as getenv() would hand it over.
  std::string text(reinterpret_cast<const char*>(data),
                   strnlen(reinterpret_cast<const char*>(data), size));

  // Error buffers of several capacities, down to none at all.
  // The full message always fits this one (the parser quotes at most the key
  // and 200 bytes of the value).
  const std::size_t full_cap = text.size() + 1024;
  static constexpr std::size_t kCaps[] = {0, 1, 2, 13, 64, 512};
  Options first;
  std::string error;
  bool ok = parse_checked(text, first, full_cap, error);
  for (std::size_t cap : kCaps) {
    Options o;
    std::string e;
    if (parse_checked(text, o, cap, e) != ok) fail("result depends on the error capacity", text);
    // Truncated messages are prefixes of the full one.
    if (error.compare(0, e.size(), e) != 0) fail("truncated error is not a prefix", text, e);
  }

  if (!ok) {
    // "guardarena: option '<key>': ..." with a key the user wrote or the
    // option a cross-option rule is about.
    const std::string prefix = "guardarena: option '";
    if (error.compare(0, prefix.size(), prefix) != 0) fail("error names no key", text, error);
    std::size_t end = error.find("': ", prefix.size());
    if (end == std::string::npos) fail("error key is not closed", text, error);
    std::string key = error.substr(prefix.size(), end - prefix.size());
    if (text.find(key) == std::string::npos && !is_option_name(key)) {
      fail("error names a key that is neither in the input nor an option", text, error);
    }
    return 0;
  }

  Options again;
  if (!parse_checked(text, again, 4096, error)) fail("second parse of the same text failed", text);
  std::string diff = first_difference(first, again);
  if (!diff.empty()) fail("same text, different options", text, diff);

  std::string canonical = serialize(first);
  Options from_defaults;
  if (!parse_checked(canonical, from_defaults, 4096, error)) {
    fail("canonical text of a parsed configuration does not parse", text,
         canonical + " -> " + error);
  }
  diff = first_difference(first, from_defaults);
  if (!diff.empty()) fail("round trip changed an option", text, diff + " in " + canonical);

  Options on_top = first;
  if (!parse_checked(canonical, on_top, 4096, error)) fail("re-parse on top failed", text, error);
  diff = first_difference(first, on_top);
  if (!diff.empty()) fail("re-parse on top changed an option", text, diff);
  return 0;
}
