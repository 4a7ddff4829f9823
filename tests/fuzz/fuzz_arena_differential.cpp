// libFuzzer harness: random allocate / deallocate / realloc / aligned request
// sequences through guardarena::guarded_resource, checked against a simple
// model of what a memory resource must do.
//
// The first input bytes choose the configuration (mode full|fast, backend
// guard|mprotect, placement, exhaustion policy, quarantine and reservation
// size, stack depth); the rest is a program of operations. After every step:
//   - every block is aligned as requested, owned (owns() true) and overlaps no
//     other live block; interior pointers and freed blocks are not owned;
//   - contents survive: each block carries a per-block pattern, verified
//     before it is freed, across realloc (allocate-copy-free) and on demand;
//   - stats match the model: live_blocks/live_bytes (guarded), fallback_live,
//     guarded/fallback/failed totals, peaks >= live, quarantine within its
//     bounds;
//   - std::bad_alloc only when the exhaustion policy allows it.
// Bounded on purpose: at most kMaxLive blocks and kMaxLiveBytes bytes live,
// a small reservation, so each input runs in milliseconds and the mprotect
// backend stays far below vm.max_map_count. Never provokes a fault: a crash
// here is a bug in the allocator (or in this model).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "guardarena/guardarena.hpp"
#include "os/os_linux.h"

namespace {

constexpr std::size_t kMaxLive = 1000;
constexpr std::size_t kMaxLiveBytes = 96u << 20;
constexpr std::size_t kMaxOps = 2000;

// Block contents are a fixed random sequence of prime length read from a
// per-block phase: fill and check are memcpy/memcmp, so multi-MiB blocks stay
// cheap, and two blocks practically never carry the same bytes.
constexpr std::size_t kPeriod = 4093;
unsigned char g_pattern[2 * kPeriod];

void init_pattern() {
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  for (std::size_t i = 0; i < kPeriod; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g_pattern[i] = g_pattern[i + kPeriod] = static_cast<unsigned char>(x >> 32);
  }
}

void fill(unsigned char* p, std::size_t n, std::uint32_t phase) {
  const unsigned char* src = g_pattern + phase % kPeriod;
  for (std::size_t done = 0; done < n; done += kPeriod) {
    std::memcpy(p + done, src, std::min(kPeriod, n - done));
  }
}

// Index of the first byte of [p, p+n) that differs from the pattern, or n.
std::size_t first_bad(const unsigned char* p, std::size_t n, std::uint32_t phase) {
  const unsigned char* src = g_pattern + phase % kPeriod;
  for (std::size_t done = 0; done < n; done += kPeriod) {
    std::size_t len = std::min(kPeriod, n - done);
    if (std::memcmp(p + done, src, len) != 0) {
      for (std::size_t i = 0; i < len; ++i) {
        if (p[done + i] != src[i]) return done + i;
      }
    }
  }
  return n;
}

// Process-wide tallies, printed at exit for docs/hardening.md's figures.
struct Tally {
  unsigned long long inputs = 0, ops = 0, allocations = 0, fallbacks = 0, refusals = 0, frees = 0,
                     reallocs = 0, releases = 0, bytes = 0;
} g_tally;

void print_tally() {
  std::fprintf(stderr,
               "fuzz_arena_differential: %llu inputs, %llu operations: %llu allocations "
               "(%llu unguarded, %llu refused), %llu frees, %llu reallocs, %llu release(), "
               "%llu MiB filled and checked\n",
               g_tally.inputs, g_tally.ops, g_tally.allocations, g_tally.fallbacks,
               g_tally.refusals, g_tally.frees, g_tally.reallocs, g_tally.releases,
               g_tally.bytes >> 20);
}

struct Block {
  unsigned char* p;
  std::size_t size;
  std::size_t align;
  std::uint32_t phase;
  bool fallback;
};

struct Config {
  bool fast = false;
  bool mprotect = false;
  bool protect_below = false;
  bool fail_on_exhaustion = false;
  bool small_quarantine = false;
  bool small_reserve = false;
  bool stacks = false;
  bool free_at_end = true;
  std::uint64_t quarantine_slots = 0;
  std::uint64_t quarantine_bytes = 0;

  std::string text() const {
    std::string s = fast ? "mode=fast" : "mode=full";
    s += mprotect ? ":backend=mprotect" : ":backend=guard";
    s += protect_below ? ":protect_below=1" : "";
    s += fail_on_exhaustion ? ":on_exhaustion=fail" : ":on_exhaustion=fallback";
    s += ":quarantine_slots=" + std::to_string(quarantine_slots);
    s += ":quarantine_bytes=" + std::to_string(quarantine_bytes);
    // 4 chunks (256 MiB) run out quickly: the exhaustion paths get exercised.
    s += small_reserve ? ":reserve_size=256M" : ":reserve_size=4G";
    s += stacks ? ":stack_depth=4" : ":stack_depth=0";
    // The fuzzer owns SIGSEGV (a fault is a finding); a small depot keeps the
    // process bounded however many inputs run.
    s += ":handle_segv=0:depot_size=1M";
    return s;
  }
};

class Harness {
 public:
  Harness(const Config& c, guardarena::guarded_resource& r) : config_(c), r_(r) {
    guardarena::arena_stats s = r_.stats();
    base_guarded_ = s.guarded_allocations;
    base_fallback_ = s.fallback_allocations;
    base_failed_ = s.failed_allocations;
  }

  [[noreturn]] void fail(const char* what, const Block* b = nullptr, std::size_t detail = 0) {
    std::fprintf(stderr, "fuzz_arena_differential: %s (detail %zu) after %zu ops\n  config %s\n",
                 what, detail, ops_, config_.text().c_str());
    if (b != nullptr) {
      std::fprintf(stderr, "  block %p size %zu align %zu phase %u %s\n", static_cast<void*>(b->p),
                   b->size, b->align, b->phase, b->fallback ? "fallback" : "guarded");
    }
    std::abort();
  }

  void allocate(std::size_t size, std::size_t align) {
    if (live_.size() >= kMaxLive || live_bytes_all_ + size > kMaxLiveBytes) return;
    Block b{};
    if (!allocate_block(size, align, b)) return;
    fill(b.p, b.size, b.phase);
    live_.push_back(b);
  }

  void deallocate(std::size_t index) {
    if (live_.empty()) return;
    index %= live_.size();
    Block b = live_[index];
    verify(b);
    free_block(b);
    live_[index] = live_.back();
    live_.pop_back();
  }

  // realloc as the shim does it: allocate, copy, free.
  void reallocate(std::size_t index, std::size_t new_size, std::size_t new_align) {
    if (live_.empty()) return;
    index %= live_.size();
    Block old = live_[index];
    if (live_bytes_all_ + new_size > kMaxLiveBytes) return;
    Block b{};
    if (!allocate_block(new_size, new_align, b)) return;
    std::size_t keep = std::min(old.size, new_size);
    verify(old);
    std::memcpy(b.p, old.p, keep);
    free_block(old);
    // The copied prefix must still read back after the old block is gone.
    std::size_t bad = first_bad(b.p, keep, old.phase);
    if (bad != keep) fail("realloc lost the copied contents", &b, bad);
    fill(b.p, b.size, b.phase);
    live_[index] = b;
    ++g_tally.reallocs;
  }

  void verify_one(std::size_t index) {
    if (live_.empty()) return;
    verify(live_[index % live_.size()]);
  }

  // Rewrites a block with a fresh pattern: a block sharing memory with
  // another would now corrupt it.
  void rewrite(std::size_t index) {
    if (live_.empty()) return;
    Block& b = live_[index % live_.size()];
    verify(b);
    b.phase = next_phase();
    fill(b.p, b.size, b.phase);
  }

  void check_ownership(std::size_t index) {
    if (live_.empty()) return;
    const Block& b = live_[index % live_.size()];
    if (!r_.owns(b.p)) fail("live block not owned", &b);
    if (b.size > 1 && r_.owns(b.p + 1)) fail("interior pointer reported as a block", &b);
  }

  void release() {
    r_.release();
    ++g_tally.releases;
    live_.clear();
    by_address_.clear();
    live_guarded_ = live_fallback_ = 0;
    live_bytes_guarded_ = live_bytes_all_ = 0;
    guarded_total_ = fallback_total_ = failed_total_ = 0;
    guardarena::arena_stats s = r_.stats();
    if (s.live_blocks != 0 || s.live_bytes != 0 || s.fallback_live != 0)
      fail("release left blocks");
    base_guarded_ = s.guarded_allocations;
    base_fallback_ = s.fallback_allocations;
    base_failed_ = s.failed_allocations;
  }

  void check_stats() {
    guardarena::arena_stats s = r_.stats();
    if (s.live_blocks != live_guarded_) fail("stats.live_blocks", nullptr, s.live_blocks);
    if (s.live_bytes != live_bytes_guarded_) fail("stats.live_bytes", nullptr, s.live_bytes);
    if (s.fallback_live != live_fallback_) fail("stats.fallback_live", nullptr, s.fallback_live);
    if (s.guarded_allocations - base_guarded_ != guarded_total_) {
      fail("stats.guarded_allocations", nullptr, s.guarded_allocations - base_guarded_);
    }
    if (s.fallback_allocations - base_fallback_ != fallback_total_) {
      fail("stats.fallback_allocations", nullptr, s.fallback_allocations - base_fallback_);
    }
    if (s.failed_allocations - base_failed_ != failed_total_) {
      fail("stats.failed_allocations", nullptr, s.failed_allocations - base_failed_);
    }
    if (s.peak_live_blocks < s.live_blocks) fail("peak_live_blocks below live_blocks");
    if (s.peak_live_bytes < s.live_bytes) fail("peak_live_bytes below live_bytes");
    if (s.quarantined_blocks > config_.quarantine_slots) {
      fail("quarantine above quarantine_slots", nullptr, s.quarantined_blocks);
    }
    if (s.quarantined_bytes > config_.quarantine_bytes) {
      fail("quarantine above quarantine_bytes", nullptr, s.quarantined_bytes);
    }
  }

  void finish() {
    if (config_.free_at_end) {
      while (!live_.empty()) deallocate(live_.size() - 1);
      check_stats();
    }
    // Otherwise the resource's destructor takes back whatever is left.
  }

  void count_op() {
    ++ops_;
    ++g_tally.ops;
  }

 private:
  std::uint32_t next_phase() { return phase_ += 7919; }

  bool allocate_block(std::size_t size, std::size_t align, Block& b) {
    guardarena::arena_stats before = r_.stats();
    void* p = nullptr;
    try {
      p = r_.allocate(size, align);
    } catch (const std::bad_alloc&) {
      // Only the fail policy may refuse a request this small: the fallback
      // (posix_memalign) does not run out at these sizes.
      if (!config_.fail_on_exhaustion)
        fail("std::bad_alloc under on_exhaustion=fallback", nullptr, size);
      ++failed_total_;
      ++g_tally.refusals;
      return false;
    }
    guardarena::arena_stats after = r_.stats();
    b.p = static_cast<unsigned char*>(p);
    b.size = size;
    b.align = align;
    b.phase = next_phase();
    b.fallback = after.fallback_allocations != before.fallback_allocations;
    if (b.fallback && config_.fail_on_exhaustion)
      fail("fallback block under on_exhaustion=fail", &b);
    if (reinterpret_cast<std::uintptr_t>(p) % align != 0) fail("misaligned block", &b);
    if (!r_.owns(p)) fail("new block not owned", &b);
    std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
    std::size_t extent = size == 0 ? 1 : size;
    auto next = by_address_.lower_bound(a);
    if (next != by_address_.end() && next->first < a + extent)
      fail("overlaps the next live block", &b);
    if (next != by_address_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second > a) fail("overlaps the previous live block", &b);
    }
    by_address_[a] = extent;
    ++g_tally.allocations;
    g_tally.bytes += size;
    if (b.fallback) ++g_tally.fallbacks;
    if (b.fallback) {
      ++live_fallback_;
      ++fallback_total_;
    } else {
      ++live_guarded_;
      ++guarded_total_;
      live_bytes_guarded_ += size;
    }
    live_bytes_all_ += size;
    return true;
  }

  void free_block(const Block& b) {
    r_.deallocate(b.p, b.size, b.align);
    ++g_tally.frees;
    by_address_.erase(reinterpret_cast<std::uintptr_t>(b.p));
    // Before any other allocation can reuse the address.
    if (r_.owns(b.p)) fail("freed block still owned", &b);
    if (b.fallback) {
      --live_fallback_;
    } else {
      --live_guarded_;
      live_bytes_guarded_ -= b.size;
    }
    live_bytes_all_ -= b.size;
  }

  void verify(const Block& b) {
    std::size_t bad = first_bad(b.p, b.size, b.phase);
    if (bad != b.size) fail("block contents changed", &b, bad);
  }

  Config config_;
  guardarena::guarded_resource& r_;
  std::vector<Block> live_;
  std::map<std::uintptr_t, std::size_t> by_address_;  // start -> extent
  std::uint64_t live_guarded_ = 0, live_fallback_ = 0;
  std::uint64_t live_bytes_guarded_ = 0, live_bytes_all_ = 0;
  std::uint64_t guarded_total_ = 0, fallback_total_ = 0, failed_total_ = 0;
  std::uint64_t base_guarded_ = 0, base_fallback_ = 0, base_failed_ = 0;
  std::uint32_t phase_ = 1;
  std::size_t ops_ = 0;
};

// Sizes: mostly small, some around page boundaries, a few up to 6 MiB.
std::size_t pick_size(FuzzedDataProvider& in, std::size_t page) {
  std::uint8_t kind = in.ConsumeIntegral<std::uint8_t>();
  if (kind < 140) return in.ConsumeIntegralInRange<std::size_t>(0, 256);
  if (kind < 200) return in.ConsumeIntegralInRange<std::size_t>(0, 3 * page);
  if (kind < 230) {
    std::size_t pages = in.ConsumeIntegralInRange<std::size_t>(1, 64);
    return pages * page + in.ConsumeIntegralInRange<std::size_t>(0, 2) - 1;
  }
  if (kind < 250) return in.ConsumeIntegralInRange<std::size_t>(0, 256 << 10);
  return in.ConsumeIntegralInRange<std::size_t>(0, 6 << 20);
}

// Alignments: the fundamental ones mostly, any power of two up to 64 KiB,
// rarely 1 MiB (above the page, so the slot needs room to slide).
std::size_t pick_align(FuzzedDataProvider& in) {
  std::uint8_t kind = in.ConsumeIntegral<std::uint8_t>();
  if (kind < 160) return std::size_t{1} << (kind % 5);
  if (kind < 254) return std::size_t{1} << (kind % 17);
  return std::size_t{1} << 20;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_pattern();
  std::atexit(print_tally);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::uint8_t c0 = in.ConsumeIntegral<std::uint8_t>();
  std::uint8_t c1 = in.ConsumeIntegral<std::uint8_t>();
  Config config;
  config.fast = c0 & 1;
  config.mprotect = (c0 & 2) != 0 || !guardarena::os::guard_regions_supported();
  config.protect_below = c0 & 4;
  config.fail_on_exhaustion = c0 & 8;
  config.small_quarantine = c0 & 16;
  config.small_reserve = (c0 & 0xe0) == 0xe0;  // one input in 8
  config.stacks = c1 & 1;
  config.free_at_end = (c1 & 6) != 6;
  config.quarantine_slots = config.small_quarantine ? (c1 >> 3) + 1 : 65536;
  config.quarantine_bytes = config.small_quarantine ? 1u << 20 : 256u << 20;

  ++g_tally.inputs;
  guardarena::guarded_resource r{config.text()};
  Harness h(config, r);
  const std::size_t page = guardarena::os::page_size();
  for (std::size_t n = 0; n < kMaxOps && in.remaining_bytes() > 0; ++n) {
    h.count_op();
    std::uint8_t op = in.ConsumeIntegral<std::uint8_t>();
    switch (op % 16) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4: {
        std::size_t s = pick_size(in, page);
        h.allocate(s, pick_align(in));
        break;
      }
      case 5:
      case 6:
      case 7:
        h.deallocate(in.ConsumeIntegral<std::uint16_t>());
        break;
      case 8:
      case 9: {
        std::size_t index = in.ConsumeIntegral<std::uint16_t>();
        std::size_t s = pick_size(in, page);
        h.reallocate(index, s, pick_align(in));
        break;
      }
      case 10:
        h.verify_one(in.ConsumeIntegral<std::uint16_t>());
        break;
      case 11:
        h.rewrite(in.ConsumeIntegral<std::uint16_t>());
        break;
      case 12:
        h.check_ownership(in.ConsumeIntegral<std::uint16_t>());
        break;
      case 13:
        // release() drops every block at once; rare, or nothing would live long.
        if (op == 13) h.release();
        break;
      default:
        break;
    }
    h.check_stats();
  }
  h.finish();
  return 0;
}
