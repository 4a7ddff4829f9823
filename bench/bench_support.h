// Shared plumbing for the Google Benchmark suites in bench/: the --scale
// switch (quick / normal / full) that decides which cases get registered, and
// the process-level counters every suite reports (peak RSS, VMA count,
// syscalls per op). Nothing here may depend on the guardarena library: the
// malloc suite must stay a plain glibc-linked program so that any allocator
// can be swapped in with LD_PRELOAD. The /proc readers use read(2) into stack
// buffers so that measuring does not allocate through the allocator under test.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace guardarena::bench {

// How much to run. quick: the CI/smoke subset, small live sets, short min
// time, must finish the whole runner in under two minutes. normal: the default
// for a developer running a binary by hand. full: every case including the
// 1,000,000-block live sets, used by `bench/run` without --quick.
enum class Scale { kQuick, kNormal, kFull };

Scale scale() noexcept;
const char* scale_name() noexcept;

// Minimum measuring time per case at the current scale, in seconds; main()
// passes it as the default --benchmark_min_time.
double min_time() noexcept;

// Suites register their cases from a function run after the command line is
// parsed, so that the case list can depend on --scale.
using SuiteRegistrar = void (*)(Scale);
struct RegisterSuite {
  explicit RegisterSuite(SuiteRegistrar fn) noexcept;
};

// Replaces the process with a fresh run of the same command line (as main()
// received it) after `name=value` is set in the environment. For settings
// that only take effect at exec, like GLIBC_TUNABLES. Returns only on
// failure.
void reexec_with_env(const char* name, const char* value) noexcept;

// Bytes in one page of this machine (sysconf, never a literal).
std::size_t page_size() noexcept;

// Forget the process's peak RSS so that the next read_peak_rss_kib() covers
// only what happened since. Writes "5" to /proc/self/clear_refs (Linux 4.0+);
// returns false when that is not permitted, in which case the peak is the
// whole process's.
bool reset_peak_rss() noexcept;
// VmHWM from /proc/self/status in KiB, or -1 when unreadable.
long read_peak_rss_kib() noexcept;
// VmRSS from /proc/self/status in KiB, or -1 when unreadable.
long read_rss_kib() noexcept;
// Number of lines in /proc/self/maps (= mappings, VMAs), or -1.
long count_vmas() noexcept;

// The allocator's syscall counter when the loaded allocator exports
// `extern "C" unsigned long long guardarena_syscall_count(void)` (found with
// dlsym(RTLD_DEFAULT)); nullptr under any other allocator.
using SyscallCountFn = unsigned long long (*)();
SyscallCountFn syscall_counter() noexcept;
// Same for `guardarena_fallback_count` (allocations served unguarded because
// the guard budget ran out), when the allocator exports it.
SyscallCountFn fallback_counter() noexcept;

// Measures one benchmark run: construct after setup (it resets the RSS peak
// and counts VMAs there), call start() right before the timed loop and
// finish() right after it with the number of allocator operations done. It
// sets items_processed and the counters rss_peak_kib, vmas and, when the
// allocator exposes its counters, syscalls_per_op and fallback_allocations
// (process total: any non-zero value means some blocks were not guarded). In multi-threaded cases
// only thread 0 reports (counters from every thread would be summed).
class RunCounters {
 public:
  explicit RunCounters(benchmark::State& state) noexcept;
  void start() noexcept;
  void finish(std::int64_t ops) noexcept;

 private:
  benchmark::State& state_;
  long vmas_ = -1;
  SyscallCountFn syscalls_ = nullptr;
  unsigned long long syscalls_at_start_ = 0;
};

// A small, fast, deterministic PRNG (xorshift64*), so random workloads are
// identical under every allocator and the generator costs ~1 ns.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : s_(seed ? seed : 0x9e3779b97f4a7c15ULL) {}
  std::uint64_t next() noexcept {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dULL;
  }
  // Uniform in [lo, hi].
  std::size_t between(std::size_t lo, std::size_t hi) noexcept {
    return lo + static_cast<std::size_t>(next() % (hi - lo + 1));
  }

 private:
  std::uint64_t s_;
};

}  // namespace guardarena::bench
