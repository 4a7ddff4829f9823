// How much memory the process may use: the limit of its memory cgroup (v2
// memory.max, v1 memory.limit_in_bytes), the tightest one on the way from
// the process's own cgroup up to the root, else the machine's physical
// memory. Read with raw syscalls into stack buffers: no allocation, because
// the preload library asks while its own malloc is not ready yet.
#pragma once

#include <cstddef>
#include <cstdint>

namespace guardarena::os {

enum class MemoryLimitSource : std::uint8_t { kCgroup, kPhysical };

struct MemoryLimit {
  std::uint64_t bytes = 0;
  MemoryLimitSource source = MemoryLimitSource::kPhysical;
};

// The parsed value of one cgroup limit file: a number of bytes, or 0 for
// "no limit" ("max", a v1 value at or above physical memory is left to the
// caller) and for anything unreadable.
std::uint64_t parse_cgroup_limit(const char* text, std::size_t len) noexcept;

// The process's memory limit. `root` prefixes every path read (/proc/self/
// cgroup, /sys/fs/cgroup/...): "" on the real system, a directory laid out
// like one in tests. The cgroup hierarchies are looked for where systemd and
// container runtimes mount them: v2 at /sys/fs/cgroup or
// /sys/fs/cgroup/unified, v1's memory controller at /sys/fs/cgroup/memory. A
// cgroup limit above `physical_bytes` counts as none. Never fails: without a
// readable cgroup limit the answer is `physical_bytes`.
MemoryLimit memory_limit(const char* root, std::uint64_t physical_bytes) noexcept;

// Physical memory: sysconf(_SC_PHYS_PAGES) pages of page_size().
std::uint64_t physical_memory() noexcept;

}  // namespace guardarena::os
