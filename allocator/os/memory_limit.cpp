// The process's memory limit (os/memory_limit.h).
#include "os/memory_limit.h"

#include <unistd.h>

#include <cstring>

#include "os/os_linux.h"
#include "os/raw_writer.h"

namespace guardarena::os {
namespace {

constexpr std::size_t kPathMax = 1024;

// One hierarchy to look in: where it is mounted and the name of its limit file.
struct Hierarchy {
  const char* mount;
  const char* file;
};
constexpr Hierarchy kV2[] = {{"/sys/fs/cgroup", "memory.max"},
                             {"/sys/fs/cgroup/unified", "memory.max"}};
constexpr Hierarchy kV1[] = {{"/sys/fs/cgroup/memory", "memory.limit_in_bytes"}};

// The tightest limit on the way from `path` (the cgroup, "/..." relative to
// the hierarchy's root) up to the root: a cgroup is held to every ancestor's
// limit too. 0 when none is set or readable.
std::uint64_t tightest_limit(const char* root, const Hierarchy& h, const char* path,
                             std::size_t path_len) noexcept {
  std::uint64_t best = 0;
  for (;;) {
    char file[kPathMax + 1];
    RawWriter w(file, kPathMax);
    w.str(root).str(h.mount).chars(path, path_len).ch('/').str(h.file);
    if (w.size() >= kPathMax) return best;  // truncated: not a path worth reading
    file[w.size()] = '\0';
    char buf[64];
    const std::uint64_t v = parse_cgroup_limit(buf, read_small_file(file, buf, sizeof buf));
    if (v != 0 && (best == 0 || v < best)) best = v;
    // Up one level: drop the last component ("/a/b" -> "/a" -> "").
    while (path_len > 0 && path[path_len - 1] != '/') --path_len;
    if (path_len == 0) return best;
    --path_len;
  }
}

bool has_memory_controller(const char* list, std::size_t len) noexcept {
  for (std::size_t i = 0; i < len;) {
    std::size_t j = i;
    while (j < len && list[j] != ',') ++j;
    if (j - i == 6 && std::memcmp(list + i, "memory", 6) == 0) return true;
    i = j + 1;
  }
  return false;
}

template <std::size_t N>
std::uint64_t tightest_of(const char* root, const Hierarchy (&hs)[N], const char* path,
                          std::size_t len) noexcept {
  std::uint64_t best = 0;
  for (const Hierarchy& h : hs) {
    const std::uint64_t v = tightest_limit(root, h, path, len);
    if (v != 0 && (best == 0 || v < best)) best = v;
  }
  return best;
}

}  // namespace

std::uint64_t parse_cgroup_limit(const char* text, std::size_t len) noexcept {
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < len && text[i] >= '0' && text[i] <= '9'; ++i) {
    const auto d = static_cast<std::uint64_t>(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  // "max", an empty or unreadable file: no limit. A number must end the line.
  if (i == 0 || (i < len && text[i] != '\n')) return 0;
  return v;
}

MemoryLimit memory_limit(const char* root, std::uint64_t physical_bytes) noexcept {
  char file[kPathMax + 1];
  RawWriter w(file, kPathMax);
  w.str(root).str("/proc/self/cgroup");
  file[w.size()] = '\0';
  // Lines "id:controllers:path"; v2's is "0::path", v1's memory line names
  // "memory" among its controllers.
  char text[4096];
  const std::size_t n = read_small_file(file, text, sizeof text);
  std::uint64_t best = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t end = i;
    while (end < n && text[end] != '\n') ++end;
    const char* line = text + i;
    const std::size_t len = end - i;
    i = end + 1;
    const char* c1 = static_cast<const char*>(std::memchr(line, ':', len));
    if (c1 == nullptr) continue;
    const char* controllers = c1 + 1;
    const auto rest = static_cast<std::size_t>(line + len - controllers);
    const char* c2 = static_cast<const char*>(std::memchr(controllers, ':', rest));
    if (c2 == nullptr) continue;
    const auto clen = static_cast<std::size_t>(c2 - controllers);
    const char* path = c2 + 1;
    auto plen = static_cast<std::size_t>(line + len - path);
    // The root cgroup is "/": its limit file (if any) sits at the mount point.
    if (plen == 1 && path[0] == '/') plen = 0;
    std::uint64_t v = 0;
    if (c1 - line == 1 && line[0] == '0' && clen == 0) {
      v = tightest_of(root, kV2, path, plen);
    } else if (has_memory_controller(controllers, clen)) {
      v = tightest_of(root, kV1, path, plen);
    }
    if (v != 0 && (best == 0 || v < best)) best = v;
  }
  if (best != 0 && best < physical_bytes) return {best, MemoryLimitSource::kCgroup};
  return {physical_bytes, MemoryLimitSource::kPhysical};
}

std::uint64_t physical_memory() noexcept {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  return pages > 0 ? static_cast<std::uint64_t>(pages) * page_size() : 0;
}

}  // namespace guardarena::os
