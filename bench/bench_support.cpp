// main() for every bench binary plus the /proc readers declared in
// bench_support.h. The readers avoid the heap (read(2) into stack buffers)
// because they run inside benchmarks whose allocator is the thing measured.
#include "bench_support.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace guardarena::bench {
namespace {

Scale g_scale = Scale::kNormal;
char** g_original_argv = nullptr;

// Fixed-size registry: suites register from static constructors in other
// translation units, so this must not depend on static initialisation order.
constexpr int kMaxSuites = 16;
std::array<SuiteRegistrar, kMaxSuites>& registrars() {
  static std::array<SuiteRegistrar, kMaxSuites> list{};
  return list;
}
int& registrar_count() {
  static int count = 0;
  return count;
}

// Reads a small /proc file whole into buf (NUL-terminated); returns length or -1.
long read_small_file(const char* path, char* buf, std::size_t cap) noexcept {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  std::size_t len = 0;
  while (len + 1 < cap) {
    ssize_t n = ::read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  ::close(fd);
  buf[len] = '\0';
  return static_cast<long>(len);
}

long status_field_kib(const char* field) noexcept {
  char buf[8192];
  if (read_small_file("/proc/self/status", buf, sizeof buf) < 0) return -1;
  const char* line = std::strstr(buf, field);
  if (line == nullptr) return -1;
  return std::strtol(line + std::strlen(field), nullptr, 10);
}

}  // namespace

Scale scale() noexcept {
  return g_scale;
}

const char* scale_name() noexcept {
  switch (g_scale) {
    case Scale::kQuick:
      return "quick";
    case Scale::kFull:
      return "full";
    case Scale::kNormal:
      break;
  }
  return "normal";
}

double min_time() noexcept {
  switch (g_scale) {
    case Scale::kQuick:
      return 0.01;
    case Scale::kFull:
      return 0.2;
    case Scale::kNormal:
      break;
  }
  return 0.1;
}

RegisterSuite::RegisterSuite(SuiteRegistrar fn) noexcept {
  if (registrar_count() < kMaxSuites)
    registrars()[static_cast<std::size_t>(registrar_count()++)] = fn;
}

void reexec_with_env(const char* name, const char* value) noexcept {
  if (g_original_argv == nullptr) return;
  ::setenv(name, value, 1);
  std::fflush(nullptr);
  ::execv("/proc/self/exe", g_original_argv);
}

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

bool reset_peak_rss() noexcept {
  int fd = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

long read_peak_rss_kib() noexcept {
  return status_field_kib("VmHWM:");
}
long read_rss_kib() noexcept {
  return status_field_kib("VmRSS:");
}

long count_vmas() noexcept {
  int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[65536];
  long lines = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  }
  ::close(fd);
  return lines;
}

SyscallCountFn syscall_counter() noexcept {
  static const SyscallCountFn fn =
      reinterpret_cast<SyscallCountFn>(::dlsym(RTLD_DEFAULT, "guardarena_syscall_count"));
  return fn;
}

SyscallCountFn fallback_counter() noexcept {
  static const SyscallCountFn fn =
      reinterpret_cast<SyscallCountFn>(::dlsym(RTLD_DEFAULT, "guardarena_fallback_count"));
  return fn;
}

RunCounters::RunCounters(benchmark::State& state) noexcept : state_(state) {
  if (state_.thread_index() != 0) return;
  reset_peak_rss();
  vmas_ = count_vmas();
  syscalls_ = syscall_counter();
}

void RunCounters::start() noexcept {
  if (syscalls_ != nullptr) syscalls_at_start_ = syscalls_();
}

void RunCounters::finish(std::int64_t ops) noexcept {
  state_.SetItemsProcessed(ops);
  if (state_.thread_index() != 0) return;
  if (syscalls_ != nullptr && ops > 0) {
    // The count is process-wide and every thread runs `ops` (Google Benchmark
    // gives each the same iteration count): divide by all threads' ops.
    state_.counters["syscalls_per_op"] = static_cast<double>(syscalls_() - syscalls_at_start_) /
                                         (static_cast<double>(ops) * state_.threads());
  }
  if (SyscallCountFn fallbacks = fallback_counter()) {
    state_.counters["fallback_allocations"] = static_cast<double>(fallbacks());
  }
  state_.counters["rss_peak_kib"] = static_cast<double>(read_peak_rss_kib());
  state_.counters["vmas"] = static_cast<double>(vmas_);
}

}  // namespace guardarena::bench

namespace {

void print_usage() {
  std::printf(
      "guardarena bench options (besides Google Benchmark's --benchmark_*):\n"
      "  --scale=quick|normal|full   which cases to register and how long to run them\n"
      "                              (default normal; bench/run uses quick or full)\n");
}

}  // namespace

int main(int argc, char** argv) {
  using guardarena::bench::Scale;
  std::vector<char*> original_argv(argv, argv + argc);
  original_argv.push_back(nullptr);
  guardarena::bench::g_original_argv = original_argv.data();
  // Take our own flags out before Google Benchmark sees (and rejects) them.
  int kept = 1;
  bool min_time_given = false;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (std::strncmp(arg, "--benchmark_min_time", 20) == 0) min_time_given = true;
    if (std::strncmp(arg, "--scale=", 8) == 0) {
      const char* value = arg + 8;
      if (std::strcmp(value, "quick") == 0) {
        guardarena::bench::g_scale = Scale::kQuick;
      } else if (std::strcmp(value, "normal") == 0) {
        guardarena::bench::g_scale = Scale::kNormal;
      } else if (std::strcmp(value, "full") == 0) {
        guardarena::bench::g_scale = Scale::kFull;
      } else {
        std::fprintf(stderr, "--scale: expected quick, normal or full, got '%s'\n", value);
        return 1;
      }
      continue;
    }
    if (std::strcmp(arg, "--help") == 0) print_usage();
    argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;

  // The scale's measuring time goes in as the default --benchmark_min_time
  // rather than per-case MinTime(), so case names (which would carry
  // "min_time:X") stay the same at every scale.
  std::vector<char*> args(argv, argv + argc);
  std::string min_time_flag =
      "--benchmark_min_time=" + std::to_string(guardarena::bench::min_time());
  if (!min_time_given) args.insert(args.begin() + 1, min_time_flag.data());
  args.push_back(nullptr);
  argc = static_cast<int>(args.size()) - 1;
  argv = args.data();

  for (int i = 0; i < guardarena::bench::registrar_count(); ++i) {
    guardarena::bench::registrars()[static_cast<std::size_t>(i)](guardarena::bench::g_scale);
  }
  benchmark::AddCustomContext("guardarena_scale", guardarena::bench::scale_name());
  const char* preload = std::getenv("LD_PRELOAD");
  benchmark::AddCustomContext("ld_preload", preload ? preload : "");
  const char* options = std::getenv("GUARDARENA_OPTIONS");
  benchmark::AddCustomContext("guardarena_options", options ? options : "");
  benchmark::AddCustomContext("page_size", std::to_string(guardarena::bench::page_size()));
  benchmark::AddCustomContext("syscall_counter",
                              guardarena::bench::syscall_counter() ? "yes" : "no");

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
