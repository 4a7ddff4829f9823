// Per-thread cache of fast mode: free slot ids per size class and a small
// batch of freed slots on their way to the arena's quarantine, so that a
// malloc/free pair in steady state takes no lock and makes no syscall.
// Internal to the arena; plain data in initial-exec TLS (the preload library
// must not make glibc allocate TLS lazily: that would call malloc).
#pragma once

#include <cstdint>

namespace guardarena {

class Arena;

struct ThreadCache {
  static constexpr std::uint32_t kClasses = 16;
  static constexpr std::uint32_t kBinCap = 16;
  static constexpr std::uint32_t kPendingCap = 32;

  Arena* owner = nullptr;
  std::uint64_t epoch = 0;  // owner's epoch when this cache was filled
  bool exit_hook = false;   // pthread key set, so thread exit flushes us
  // Statistics deltas, folded into the arena at every refill and flush.
  std::int64_t live_blocks = 0;
  std::int64_t live_bytes = 0;
  std::uint64_t allocations = 0;
  std::uint32_t bin_count[kClasses] = {};
  std::uint32_t bins[kClasses][kBinCap] = {};
  std::uint32_t pending_count = 0;
  std::uint32_t pending[kPendingCap] = {};
  std::uint8_t pending_class[kPendingCap] = {};
};

}  // namespace guardarena
