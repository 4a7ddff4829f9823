// Async-signal-safe output: a fixed-capacity formatter over a caller-owned
// buffer and a write(2) loop that retries on EINTR. Used by the fault handler
// and every report, so it must never allocate, lock or call stdio.
#pragma once

#include <unistd.h>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace guardarena {

// Writes all of [data, data+len) to fd, retrying on EINTR and short writes.
inline void write_all(int fd, const char* data, std::size_t len) noexcept {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    len -= static_cast<std::size_t>(n);
  }
}

// Appends text to a fixed buffer; silently truncates when full (a truncated
// report beats none). Never allocates.
class RawWriter {
 public:
  RawWriter(char* buf, std::size_t cap) noexcept : buf_(buf), cap_(cap) {}

  RawWriter& str(const char* s) noexcept {
    if (s == nullptr) s = "(null)";
    while (*s != '\0') put(*s++);
    return *this;
  }
  RawWriter& chars(const char* s, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) put(s[i]);
    return *this;
  }
  RawWriter& ch(char c) noexcept {
    put(c);
    return *this;
  }
  RawWriter& dec(std::uint64_t v) noexcept {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) put(tmp[--n]);
    return *this;
  }
  RawWriter& sdec(std::int64_t v) noexcept {
    if (v < 0) {
      put('-');
      return dec(static_cast<std::uint64_t>(-(v + 1)) + 1);
    }
    return dec(static_cast<std::uint64_t>(v));
  }
  // "0x" followed by lower-case hex digits, at least `min_digits`.
  RawWriter& hex(std::uint64_t v, int min_digits = 1) noexcept {
    char tmp[16];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    while (n < min_digits && n < 16) tmp[n++] = '0';
    put('0');
    put('x');
    while (n > 0) put(tmp[--n]);
    return *this;
  }
  // A JSON string literal (quotes, escapes for '"', '\\' and control bytes).
  RawWriter& json_string(const char* s) noexcept {
    put('"');
    for (; s != nullptr && *s != '\0'; ++s) {
      char c = *s;
      if (c == '"' || c == '\\') {
        put('\\');
        put(c);
      } else if (static_cast<unsigned char>(c) < 0x20) {
        str("\\u00");
        put("0123456789abcdef"[(c >> 4) & 15]);
        put("0123456789abcdef"[c & 15]);
      } else {
        put(c);
      }
    }
    put('"');
    return *this;
  }
  RawWriter& ptr(const void* p) noexcept { return hex(reinterpret_cast<std::uintptr_t>(p), 12); }
  // An address in the process, as ptr() prints it, or "<hidden>" once
  // hide_addresses(true): a secure-execution process must not reveal its
  // layout (ASLR) to the less privileged caller who reads its stderr.
  RawWriter& address(std::uintptr_t a) noexcept {
    return hide_addresses_ ? str("<hidden>") : hex(a, 12);
  }
  void hide_addresses(bool hide) noexcept { hide_addresses_ = hide; }
  bool hides_addresses() const noexcept { return hide_addresses_; }

  const char* data() const noexcept { return buf_; }
  std::size_t size() const noexcept { return len_; }
  void clear() noexcept { len_ = 0; }
  void flush_to(int fd) noexcept {
    write_all(fd, buf_, len_);
    len_ = 0;
  }

 private:
  void put(char c) noexcept {
    if (len_ < cap_) buf_[len_++] = c;
  }
  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool hide_addresses_ = false;
};

}  // namespace guardarena
