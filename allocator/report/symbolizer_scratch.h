// Internal to the symbolizer (symbolizer.cpp, symbolizer_child.cpp): the one
// scratch mapping a symbolization works in, and small helpers on fixed
// buffers. Same rules as the symbolizer: no malloc, async-signal-safe
// where the fault handler calls it.
#pragma once

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "os/raw_writer.h"
#include "report/symbolizer.h"

namespace guardarena::report::symbolizer_detail {

inline constexpr std::size_t kMaxFrames = 256;
inline constexpr std::size_t kMaxModules = 64;
// Symbolizer answers, counting each inlined frame separately.
inline constexpr std::size_t kMaxResults = 512;
inline constexpr std::size_t kTextCap = 512;  // one function name or one location
inline constexpr std::size_t kLineCap = 1024;
inline constexpr std::size_t kPathCap = 4096;
inline constexpr std::size_t kInputCap = std::size_t{64} * 1024;
inline constexpr std::size_t kMaxEnv = 1024;
inline constexpr std::size_t kChildStackBytes = std::size_t{64} * 1024;
inline constexpr int kNoModule = -1;

inline constexpr const char* kAutoCandidates[] = {
    "/usr/bin/llvm-symbolizer",
    "/usr/bin/llvm-symbolizer-14",
    "/usr/bin/addr2line",
};

// Environment variables the child must not see: the preload itself, our
// options, and llvm-symbolizer's own option variable (it could change the
// output format the parser expects).
inline constexpr const char* kDroppedEnvPrefixes[] = {
    "LD_PRELOAD=",
    "LD_AUDIT=",
    "GUARDARENA_",
    "LLVM_SYMBOLIZER_OPTS=",
};

enum class Protocol : std::uint8_t { kLlvm, kAddr2line };

struct Module {
  const char* path;     // for display and for the symbolizer
  std::uintptr_t bias;  // load bias: file address = pc - bias
  bool symbolizable;    // a file path (not the vdso)
};

struct Frame {
  std::uintptr_t pc;      // as captured (printed)
  std::uintptr_t lookup;  // pc, or pc - 1 for return addresses
  int module;
  std::uint16_t first_result;
  std::uint16_t result_count;
  bool answered;
};

struct Result {
  char function[kTextCap];
  char location[kTextCap];
};

// Everything print_stack() needs, in one mapping. Only the pages touched cost
// memory (MAP_NORESERVE).
struct Scratch {
  Frame frames[kMaxFrames];
  Module modules[kMaxModules];
  std::size_t frame_count;
  std::size_t module_count;
  Result results[kMaxResults];
  std::size_t result_count;
  char exe_path[kPathCap];
  char input[kInputCap];
  char line[kLineCap];
  char* envp[kMaxEnv];
  alignas(16) unsigned char child_stack[kChildStackBytes];
};

// ---------------------------------------------------------------------------
// Small string helpers on fixed buffers.

inline std::size_t bounded_copy(char* dst, std::size_t cap, const char* src,
                                std::size_t len) noexcept {
  if (cap == 0) return 0;
  if (len >= cap) len = cap - 1;
  std::memcpy(dst, src, len);
  dst[len] = '\0';
  return len;
}

inline bool starts_with(const char* s, const char* prefix) noexcept {
  return std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}

inline bool is_digits(const char* begin, const char* end) noexcept {
  if (begin == end) return false;
  for (const char* p = begin; p != end; ++p) {
    if (*p < '0' || *p > '9') return false;
  }
  return true;
}

// Appends text to a fixed buffer; returns false once it does not fit.
struct Appender {
  char* buf;
  std::size_t cap;
  std::size_t len;

  bool str(const char* s) noexcept { return chars(s, std::strlen(s)); }
  bool chars(const char* s, std::size_t n) noexcept {
    if (cap - len < n) return false;
    std::memcpy(buf + len, s, n);
    len += n;
    return true;
  }
  bool hex(std::uintptr_t v) noexcept {
    char tmp[2 + 2 * sizeof(v)];
    RawWriter w(tmp, sizeof(tmp));
    w.hex(v);
    return chars(w.data(), w.size());
  }
};

inline std::int64_t now_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

inline void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Descriptors handed to the child must not be 0-2, or dup2 onto the standard
// ones would be a no-op that keeps O_CLOEXEC (and one could clobber another).
inline int above_stdio(int fd) noexcept {
  if (fd < 0 || fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

// Runs the symbolizer (config.path, or the first automatic candidate that
// answers) on the frames of `s` whose module is known, and files its answers
// in s->results. Starts no child in a secure-execution process or when
// config.path is "". Bounded by config.timeout_ms.
void symbolize(Scratch* s, const SymbolizerConfig& config) noexcept;
// True when `path` names a file this process may execute.
bool executable(const char* path) noexcept;

}  // namespace guardarena::report::symbolizer_detail
