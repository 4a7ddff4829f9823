// The cost floor under any guard-page allocator: what one page's worth of
// each kernel operation costs on this machine (MADV_GUARD_INSTALL/REMOVE,
// mprotect, a first-touch fault, a bare syscall). Each number bounds what a
// guarded malloc/free pair can cost in the mode that needs it. It talks to the
// kernel directly; it does not use the guardarena library.
//
// Operations that need state reset between calls (a guard to remove, a
// touched page to zap) work through a large region one page per iteration and
// reset the whole region in one call with the timer paused, so the
// PauseTiming cost is paid once per kRegionPages iterations.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

namespace guardarena::bench {
namespace {

constexpr std::size_t kRegionPages = 4096;
constexpr std::size_t kFreshBatchPages = 512;

// A private anonymous read/write mapping, unmapped on scope exit.
class Region {
 public:
  explicit Region(std::size_t bytes) : bytes_(bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Region() {
    if (base_ != nullptr) ::munmap(base_, bytes_);
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  char* base() const noexcept { return base_; }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  char* base_ = nullptr;
  std::size_t bytes_;
};

void touch_all(char* base, std::size_t bytes) {
  for (std::size_t off = 0; off < bytes; off += page_size())
    static_cast<volatile char*>(base)[off] = 1;
}

// Skips the case (and returns false) when the kernel lacks guard regions.
bool require_guard_regions(benchmark::State& state, char* page) {
  if (::madvise(page, page_size(), MADV_GUARD_INSTALL) == 0) {
    ::madvise(page, page_size(), MADV_GUARD_REMOVE);
    return true;
  }
  std::string msg = "MADV_GUARD_INSTALL unsupported: ";
  msg += std::strerror(errno);
  state.SkipWithError(msg.c_str());
  return false;
}

bool check(benchmark::State& state, int rc, const char* what) {
  if (rc == 0) return true;
  std::string msg = std::string(what) + " failed: " + std::strerror(errno);
  state.SkipWithError(msg.c_str());
  return false;
}

void finish(benchmark::State& state, std::int64_t ops) {
  state.SetItemsProcessed(ops);
  state.counters["page_size"] = static_cast<double>(page_size());
}

void bm_bare_syscall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
  finish(state, state.iterations());
}

void bm_guard_remove(benchmark::State& state) {
  const std::size_t page = page_size();
  Region region(kRegionPages * page);
  if (region.base() == nullptr) return state.SkipWithError("mmap failed");
  if (!require_guard_regions(state, region.base())) return;
  std::size_t next = kRegionPages;
  for (auto _ : state) {
    if (next == kRegionPages) {
      state.PauseTiming();
      if (!check(state, ::madvise(region.base(), region.bytes(), MADV_GUARD_INSTALL), "install"))
        break;
      next = 0;
      state.ResumeTiming();
    }
    if (::madvise(region.base() + next++ * page, page, MADV_GUARD_REMOVE) != 0) {
      check(state, -1, "MADV_GUARD_REMOVE");
      break;
    }
  }
  finish(state, state.iterations());
}

// Installs a guard over one touched page per iteration (which also discards
// the page). With spinner=true another thread of the process busy-spins on
// the other core, so the kernel must shoot down that CPU's TLB entries too:
// the cost a multi-threaded program pays on every guarded free.
void guard_install_touched(benchmark::State& state, bool spinner) {
  const std::size_t page = page_size();
  Region region(kRegionPages * page);
  if (region.base() == nullptr) return state.SkipWithError("mmap failed");
  if (!require_guard_regions(state, region.base())) return;
  std::atomic<bool> stop{false};
  std::thread spin;
  if (spinner) {
    spin = std::thread([&stop] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  }
  std::size_t next = kRegionPages;
  for (auto _ : state) {
    if (next == kRegionPages) {
      state.PauseTiming();
      if (!check(state, ::madvise(region.base(), region.bytes(), MADV_GUARD_REMOVE), "remove"))
        break;
      touch_all(region.base(), region.bytes());
      next = 0;
      state.ResumeTiming();
    }
    if (::madvise(region.base() + next++ * page, page, MADV_GUARD_INSTALL) != 0) {
      check(state, -1, "MADV_GUARD_INSTALL");
      break;
    }
  }
  stop.store(true);
  if (spin.joinable()) spin.join();
  finish(state, state.iterations());
}

void bm_guard_install_touched(benchmark::State& state) {
  guard_install_touched(state, false);
}
void bm_guard_install_touched_spinner(benchmark::State& state) {
  guard_install_touched(state, true);
}

// One MADV_GUARD_INSTALL call over kFreshBatchPages never-touched pages of a
// new mapping: the cost of guarding a whole fresh slab at once, including
// allocating its page tables. The region is unmapped and mapped anew every
// kBatches calls (timer paused), because a guard removed from a range leaves
// its page tables behind and a second install there is much cheaper. One op
// = one call.
void bm_guard_install_fresh_batch(benchmark::State& state) {
  const std::size_t page = page_size();
  constexpr std::size_t kBatches = 64;
  const std::size_t batch = kFreshBatchPages * page;
  auto region = std::make_unique<Region>(kBatches * batch);
  if (region->base() == nullptr) return state.SkipWithError("mmap failed");
  if (!require_guard_regions(state, region->base())) return;
  std::size_t next = kBatches;
  for (auto _ : state) {
    if (next == kBatches) {
      state.PauseTiming();
      region.reset();
      region = std::make_unique<Region>(kBatches * batch);
      if (region->base() == nullptr) {
        state.SkipWithError("mmap failed");
        break;
      }
      next = 0;
      state.ResumeTiming();
    }
    if (::madvise(region->base() + next++ * batch, batch, MADV_GUARD_INSTALL) != 0) {
      check(state, -1, "MADV_GUARD_INSTALL");
      break;
    }
  }
  finish(state, state.iterations());
  state.counters["pages_per_call"] = static_cast<double>(kFreshBatchPages);
}

// mprotect of one touched page in the middle of a mapping, to PROT_NONE and
// back: each call splits or merges VMAs, as the mprotect backend does. One op
// = one mprotect call.
void bm_mprotect_toggle(benchmark::State& state) {
  const std::size_t page = page_size();
  Region region(16 * page);
  if (region.base() == nullptr) return state.SkipWithError("mmap failed");
  touch_all(region.base(), region.bytes());
  char* target = region.base() + 8 * page;
  for (auto _ : state) {
    if (::mprotect(target, page, PROT_NONE) != 0 ||
        ::mprotect(target, page, PROT_READ | PROT_WRITE) != 0) {
      check(state, -1, "mprotect");
      break;
    }
  }
  finish(state, state.iterations() * 2);
}

// First write to a page whose memory was returned with MADV_DONTNEED: the
// page fault + zeroing a recycled slot pays in full mode.
void bm_first_touch_fault(benchmark::State& state) {
  const std::size_t page = page_size();
  Region region(kRegionPages * page);
  if (region.base() == nullptr) return state.SkipWithError("mmap failed");
  std::size_t next = kRegionPages;
  for (auto _ : state) {
    if (next == kRegionPages) {
      state.PauseTiming();
      if (!check(state, ::madvise(region.base(), region.bytes(), MADV_DONTNEED), "MADV_DONTNEED"))
        break;
      next = 0;
      state.ResumeTiming();
    }
    static_cast<volatile char*>(region.base())[next++ * page] = 1;
  }
  finish(state, state.iterations());
}

// Full mode's batched open (see os::guard_remove_many): 16 one-page slots,
// guard pages between them, opened and committed by two process_madvise
// calls on PIDFD_SELF. ns/op is per page; compare with guard_remove_1page +
// first_touch_fault_1page, which it replaces.
void bm_batched_open_16pages(benchmark::State& state) {
  constexpr std::size_t kBatch = 16;
  constexpr int kPidfdSelf = -10000;
  const std::size_t page = page_size();
  const std::size_t slots = kRegionPages / 2;
  Region region(kRegionPages * page);
  if (region.base() == nullptr) return state.SkipWithError("mmap failed");
  if (!check(state, ::madvise(region.base(), region.bytes(), MADV_GUARD_INSTALL),
             "MADV_GUARD_INSTALL"))
    return;
  std::size_t next = 0;
  iovec iov[kBatch];
  for (auto _ : state) {
    if (next + kBatch > slots) {
      state.PauseTiming();
      if (!check(state, ::madvise(region.base(), region.bytes(), MADV_GUARD_INSTALL),
                 "MADV_GUARD_INSTALL"))
        break;
      next = 0;
      state.ResumeTiming();
    }
    for (std::size_t i = 0; i < kBatch; ++i)
      iov[i] = iovec{region.base() + (2 * (next + i) + 1) * page, page};
    next += kBatch;
    if (::syscall(SYS_process_madvise, kPidfdSelf, iov, kBatch, MADV_GUARD_REMOVE, 0u) < 0 ||
        ::syscall(SYS_process_madvise, kPidfdSelf, iov, kBatch, MADV_POPULATE_WRITE, 0u) < 0) {
      state.SkipWithError("process_madvise(PIDFD_SELF) unsupported (Linux < 6.15)");
      break;
    }
  }
  finish(state, state.iterations() * static_cast<std::int64_t>(kBatch));
}

// The memory floor of one block per page with a FIFO quarantine, which fast
// mode pays without any syscall: each op reuses the page touched `range(0)`
// ops ago (live set + quarantine, in pages), reading its last line (the
// poison check) and writing it and the line before (block and lead canary).
// Pages sit two apart, as slots do between guard pages. Once the pages
// outnumber the TLB and the lines outgrow the caches, each op is a TLB miss
// plus cache misses, whatever the allocator does around them.
//
// Every line sits at the same offset in its page, as right-aligned blocks of
// one size do, so each op's load aliases the previous op's stores in the low
// 12 address bits; the staggered variant moves the line by a different
// multiple of 64 bytes in each page, to show what that aliasing costs.
void cold_block_reuse(benchmark::State& state, bool staggered) {
  const std::size_t page = page_size();
  const auto pages = static_cast<std::size_t>(state.range(0));
  Region region(2 * pages * page);
  if (region.base() == nullptr) return state.SkipWithError("mmap failed");
  touch_all(region.base(), region.bytes());
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    const std::size_t shift = staggered ? 128 + (i * 7 % 31) * 64 : 0;
    char* line = region.base() + (2 * i + 1) * page - 64 - shift;
    sum += *reinterpret_cast<volatile std::uint64_t*>(line);
    *reinterpret_cast<volatile std::uint64_t*>(line) = sum;
    *reinterpret_cast<volatile std::uint64_t*>(line - 64) = sum;
    if (++i == pages) i = 0;
  }
  benchmark::DoNotOptimize(sum);
  finish(state, state.iterations());
}

void bm_cold_block_reuse(benchmark::State& state) {
  cold_block_reuse(state, false);
}
void bm_cold_block_reuse_staggered(benchmark::State& state) {
  cold_block_reuse(state, true);
}

// The per-block work fast mode's contract needs, with nothing else: one
// page per block (every other page, as slots sit between guards; the guards
// themselves cost nothing per pair once installed), a FIFO quarantine (4,096
// slots is the default 16 MiB), a poison check of the reused block, a
// 64-byte lead canary written at malloc and checked at free, poison written
// at free, and a compare-exchange on the slot's state (what detects a double
// free, also between threads). No stack capture, no statistics, no size
// classes, no thread cache, one size, one thread: a floor under fast mode's
// pair without stacks, to set against glibc's pair measured in the same run.
class MinimalFastPages {
 public:
  static constexpr unsigned char kPoison = 0xfd;
  static constexpr unsigned char kCanary = 0xca;
  static constexpr std::size_t kLead = 64;

  // `ahead`: prefetch the slot reused that many allocations later (0: none).
  MinimalFastPages(std::size_t quarantine, std::size_t ahead)
      : ahead_(ahead),
        slots_(quarantine + 1),
        ring_size_(std::bit_ceil(slots_)),
        region_(2 * slots_ * page_size()),
        ring_(ring_size_),
        meta_(slots_) {
    if (region_.base() == nullptr) return;
    touch_all(region_.base(), region_.bytes());
    std::memset(poison_, kPoison, sizeof poison_);
    std::memset(canary_, kCanary, sizeof canary_);
    for (std::size_t id = 0; id < slots_; ++id) {
      std::memset(slot(id), kPoison, page_size());
      ring_[id] = static_cast<std::uint32_t>(id);
    }
    tail_ = slots_;
  }
  bool ok() const noexcept { return region_.base() != nullptr; }
  std::uint64_t errors() const noexcept { return errors_; }

  [[gnu::noinline]] void* allocate(std::size_t size) noexcept {
    const std::uint32_t id = ring_[head_++ & (ring_size_ - 1)];
    if (ahead_ != 0) {
      // The slot reused `ahead_` allocations from now: its block, lead
      // canary and state, on their way while this pair and the next run.
      const std::uint32_t next = ring_[(head_ + ahead_ - 1) & (ring_size_ - 1)];
      const char* next_block = slot(next) + page_size() - ((size + 15) & ~std::size_t{15});
      __builtin_prefetch(next_block, 1);
      __builtin_prefetch(next_block - kLead, 1);
      __builtin_prefetch(&meta_[next], 1);
    }
    char* block = slot(id) + page_size() - ((size + 15) & ~std::size_t{15});
    errors_ += !same_bytes(block, poison_, size);
    fill16(block - kLead, canary_, kLead);
    meta_[id].size = static_cast<std::uint32_t>(size);
    meta_[id].state.store(kLive, std::memory_order_release);
    return block;
  }

  [[gnu::noinline]] void deallocate(void* p) noexcept {
    auto* block = static_cast<char*>(p);
    const auto id = static_cast<std::uint32_t>(
        (static_cast<std::size_t>(block - region_.base()) / page_size()) >> 1);
    std::uint8_t expected = kLive;
    errors_ +=
        !meta_[id].state.compare_exchange_strong(expected, kQuarantined, std::memory_order_acq_rel);
    errors_ += !same_bytes(block - kLead, canary_, kLead);
    const std::size_t size = meta_[id].size;
    if (size <= kLead) {
      fill16(block, poison_, (size + 15) & ~std::size_t{15});
    } else {
      std::memset(block, kPoison, size);
    }
    ring_[tail_++ & (ring_size_ - 1)] = id;
  }

 private:
  // Up to 64 bytes in 16-byte loads and stores at the same offsets (a load
  // that spans two earlier stores cannot be forwarded and waits for them to
  // reach the cache); memcmp beyond, as the allocator does.
  using Bytes16 = unsigned char __attribute__((vector_size(16), aligned(1)));
  static void fill16(char* p, const unsigned char* pattern, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; i += 16) std::memcpy(p + i, pattern, 16);
  }
  static bool same_bytes(const char* p, const unsigned char* pattern, std::size_t n) noexcept {
    if (n > kLead) return std::memcmp(p, pattern, n) == 0;
    Bytes16 diff = {};
    for (std::size_t i = 0; i < n; i += 16) {
      Bytes16 a, b;
      std::memcpy(&a, p + i, 16);
      std::memcpy(&b, pattern, 16);
      diff |= a ^ b;
    }
    std::uint64_t halves[2];
    std::memcpy(halves, &diff, sizeof halves);
    return (halves[0] | halves[1]) == 0;
  }

  static constexpr std::uint8_t kLive = 1;
  static constexpr std::uint8_t kQuarantined = 2;
  struct Meta {
    std::uint32_t size = 0;
    std::atomic<std::uint8_t> state{kQuarantined};
  };
  char* slot(std::size_t id) const noexcept { return region_.base() + (2 * id + 1) * page_size(); }

  std::size_t ahead_;
  std::size_t slots_;
  std::size_t ring_size_;  // power of two >= slots_
  Region region_;
  std::vector<std::uint32_t> ring_;
  std::uint64_t head_ = 0;
  std::uint64_t tail_ = 0;
  std::vector<Meta> meta_;
  std::uint64_t errors_ = 0;
  unsigned char poison_[4096];
  unsigned char canary_[kLead];
};

// Args: block size, quarantine slots, prefetch distance.
void bm_fast_mode_pair_no_stacks(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto pages = std::make_unique<MinimalFastPages>(static_cast<std::size_t>(state.range(1)),
                                                  static_cast<std::size_t>(state.range(2)));
  if (!pages->ok()) return state.SkipWithError("mmap failed");
  for (auto _ : state) {
    void* p = pages->allocate(size);
    benchmark::DoNotOptimize(p);
    static_cast<volatile char*>(p)[0] = 1;  // the program uses its block
    pages->deallocate(p);
  }
  if (pages->errors() != 0) state.SkipWithError("poison or canary check failed");
  finish(state, state.iterations());
}

void register_floor(Scale) {
  benchmark::RegisterBenchmark("floor/bare_syscall_getppid", bm_bare_syscall)->UseRealTime();
  benchmark::RegisterBenchmark("floor/guard_remove_1page", bm_guard_remove)->UseRealTime();
  benchmark::RegisterBenchmark("floor/guard_install_touched_1page", bm_guard_install_touched)
      ->UseRealTime();
  benchmark::RegisterBenchmark("floor/guard_install_touched_1page_spinner",
                               bm_guard_install_touched_spinner)
      ->UseRealTime();
  benchmark::RegisterBenchmark("floor/guard_install_fresh_512pages", bm_guard_install_fresh_batch)
      ->UseRealTime();
  benchmark::RegisterBenchmark("floor/mprotect_toggle_1page", bm_mprotect_toggle)->UseRealTime();
  benchmark::RegisterBenchmark("floor/first_touch_fault_1page", bm_first_touch_fault)
      ->UseRealTime();
  benchmark::RegisterBenchmark("floor/batched_open_16pages", bm_batched_open_16pages)
      ->UseRealTime();
  // 1,000 live blocks plus a quarantine of 0, 64, 1,024 and 4,096 pages
  // (fast_quarantine_bytes=16M is 4,096 pages of 4 KiB).
  benchmark::RegisterBenchmark("floor/cold_block_reuse", bm_cold_block_reuse)
      ->Arg(16)
      ->Arg(1064)
      ->Arg(2024)
      ->Arg(5096)
      ->UseRealTime();
  benchmark::RegisterBenchmark("floor/cold_block_reuse_staggered", bm_cold_block_reuse_staggered)
      ->Arg(16)
      ->Arg(5096)
      ->UseRealTime();
  // The sizes of the 3x target at the default quarantine, prefetching 4
  // reuses ahead; then 64 B without prefetching, and 64 B and 1 KiB with a
  // quarantine that fits the caches and the TLB (at 1 KiB the poison alone,
  // written and checked in cache, is most of the pair).
  benchmark::RegisterBenchmark("floor/fast_mode_pair_no_stacks", bm_fast_mode_pair_no_stacks)
      ->ArgNames({"size", "quarantine", "ahead"})
      ->Args({16, 4096, 4})
      ->Args({64, 4096, 4})
      ->Args({256, 4096, 4})
      ->Args({1024, 4096, 4})
      ->Args({64, 4096, 0})
      ->Args({64, 64, 0})
      ->Args({1024, 16, 0})
      ->UseRealTime();
}

const RegisterSuite kRegistered(register_floor);

}  // namespace
}  // namespace guardarena::bench
