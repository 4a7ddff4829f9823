// std::pmr workloads for pmr_bench: guardarena::guarded_resource in its
// modes against the standard resources (new_delete, unsynchronized pool,
// monotonic buffer) and a resource over jemalloc's non-standard API. Runs
// without LD_PRELOAD: every resource lives side by side in one process, and
// glibc stays the process's malloc.
//
// jemalloc is reached with dlopen(RTLD_LOCAL) + dlsym("mallocx"/"sdallocx")
// rather than by linking it, because Debian's libjemalloc exports unprefixed
// malloc/free: linked normally (or RTLD_GLOBAL) it would become the malloc of
// the whole process and every baseline would silently run on jemalloc. With
// RTLD_LOCAL the library is not in the global lookup scope, so references to
// malloc from this program and libstdc++ still bind to glibc; only the
// library's own internal references bind to itself. jemalloc_api() checks it
// at start: the address of malloc in global scope is not jemalloc's, and a
// glibc malloc leaves jemalloc's thread.allocated counter unchanged. The
// result goes into the JSON context as "jemalloc_replaces_malloc".
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <strings.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_support.h"

// Set to 1 by bench/CMakeLists.txt when the guardarena target exists.
#ifndef GUARDARENA_BENCH_HAVE_GUARDED
#define GUARDARENA_BENCH_HAVE_GUARDED 0
#endif
#if GUARDARENA_BENCH_HAVE_GUARDED
#include <guardarena/guardarena.hpp>
#endif

namespace guardarena::bench {
namespace {

// ---- the resources ---------------------------------------------------------

class BenchResource {
 public:
  virtual ~BenchResource() = default;
  virtual std::pmr::memory_resource* mr() noexcept = 0;
  // Frees everything the resource handed out, when it can; false otherwise
  // (the workload then deallocates block by block).
  virtual bool release() noexcept { return false; }
  // deallocate() returns nothing (monotonic): a workload must release()
  // between iterations or memory grows with the iteration count.
  virtual bool grows_only() const noexcept { return false; }
  // Syscalls made so far and allocations served unguarded (guard budget
  // exhausted), for resources that count them; -1 otherwise.
  virtual std::int64_t syscalls() const noexcept { return -1; }
  virtual std::int64_t fallbacks() const noexcept { return -1; }
};

class NewDeleteResource final : public BenchResource {
 public:
  std::pmr::memory_resource* mr() noexcept override { return std::pmr::new_delete_resource(); }
};

class PoolResource final : public BenchResource {
 public:
  std::pmr::memory_resource* mr() noexcept override { return &pool_; }
  bool release() noexcept override {
    pool_.release();
    return true;
  }

 private:
  std::pmr::unsynchronized_pool_resource pool_{std::pmr::new_delete_resource()};
};

class MonotonicResource final : public BenchResource {
 public:
  std::pmr::memory_resource* mr() noexcept override { return &mono_; }
  bool release() noexcept override {
    mono_.release();
    return true;
  }
  bool grows_only() const noexcept override { return true; }

 private:
  std::pmr::monotonic_buffer_resource mono_{std::pmr::new_delete_resource()};
};

struct JemallocApi {
  using MallocxFn = void* (*)(std::size_t, int);
  using SdallocxFn = void (*)(void*, std::size_t, int);
  using MallctlFn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  MallocxFn mallocx = nullptr;
  SdallocxFn sdallocx = nullptr;
  std::string error;               // non-empty: unusable, and why
  std::string replaces_malloc = "unknown";
};

// Debian's libjemalloc uses initial-exec TLS (DF_STATIC_TLS, ~2.6 KiB),
// which dlopen can only place in the static TLS surplus glibc reserves at
// startup (512 bytes by default): "cannot allocate memory in static TLS
// block". The surplus is a tunable read only at exec, so on that error the
// process runs itself again once with a larger one.
constexpr const char* kStaticTlsTunable = "glibc.rtld.optional_static_tls=16384";

void* dlopen_jemalloc(std::string& error) {
  void* handle = ::dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_LOCAL);
  if (handle != nullptr) return handle;
  const char* err = ::dlerror();
  error = std::string("dlopen libjemalloc.so.2: ") + (err ? err : "failed");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (error.find("static TLS") != std::string::npos &&
      (tunables == nullptr || std::strstr(tunables, "optional_static_tls") == nullptr)) {
    std::string value = tunables && *tunables ? std::string(tunables) + ":" + kStaticTlsTunable
                                              : std::string(kStaticTlsTunable);
    reexec_with_env("GLIBC_TUNABLES", value.c_str());
    error += " (and re-exec with a larger static TLS surplus failed)";
  }
  return nullptr;
}

// Loads jemalloc once, privately; see the file comment for why.
const JemallocApi& jemalloc_api() {
  static const JemallocApi api = [] {
    JemallocApi a;
    void* handle = dlopen_jemalloc(a.error);
    if (handle == nullptr) return a;
    a.mallocx = reinterpret_cast<JemallocApi::MallocxFn>(::dlsym(handle, "mallocx"));
    a.sdallocx = reinterpret_cast<JemallocApi::SdallocxFn>(::dlsym(handle, "sdallocx"));
    auto mallctl = reinterpret_cast<JemallocApi::MallctlFn>(::dlsym(handle, "mallctl"));
    if (a.mallocx == nullptr || a.sdallocx == nullptr) {
      a.error = "libjemalloc.so.2 lacks mallocx/sdallocx (prefixed build?)";
      return a;
    }
    const bool same_symbol = ::dlsym(RTLD_DEFAULT, "malloc") == ::dlsym(handle, "malloc");
    bool counted = false;
    if (mallctl != nullptr) {
      std::uint64_t before = 0, after = 0;
      std::size_t len = sizeof before;
      if (mallctl("thread.allocated", &before, &len, nullptr, 0) == 0) {
        void* p = std::malloc(1 << 16);
        benchmark::DoNotOptimize(p);
        std::free(p);
        len = sizeof after;
        mallctl("thread.allocated", &after, &len, nullptr, 0);
        counted = after != before;
      }
    }
    a.replaces_malloc = same_symbol || counted ? "YES (baselines are on jemalloc!)" : "no (verified)";
    return a;
  }();
  return api;
}

// jemalloc's MALLOCX_ALIGN(a) for a power of two a.
inline int mallocx_align(std::size_t align) noexcept { return ::ffs(static_cast<int>(align)) - 1; }

class JemallocMemoryResource final : public std::pmr::memory_resource {
 public:
  explicit JemallocMemoryResource(const JemallocApi& api) : api_(api) {}

 private:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    void* p = api_.mallocx(bytes == 0 ? 1 : bytes, mallocx_align(align));
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    api_.sdallocx(p, bytes == 0 ? 1 : bytes, mallocx_align(align));
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  const JemallocApi& api_;
};

class JemallocResource final : public BenchResource {
 public:
  JemallocResource() : res_(checked()) {}
  std::pmr::memory_resource* mr() noexcept override { return &res_; }

 private:
  static const JemallocApi& checked() {
    const JemallocApi& api = jemalloc_api();
    if (!api.error.empty()) throw std::runtime_error(api.error);
    return api;
  }
  JemallocMemoryResource res_;
};

#if GUARDARENA_BENCH_HAVE_GUARDED
template <class Guarded>
class GuardedResource final : public BenchResource {
 public:
  explicit GuardedResource(std::string_view options) : res_(options) {}
  std::pmr::memory_resource* mr() noexcept override { return &res_; }
  bool release() noexcept override {
    res_.release();
    return true;
  }
  std::int64_t syscalls() const noexcept override {
    return static_cast<std::int64_t>(res_.stats().syscalls);
  }
  std::int64_t fallbacks() const noexcept override {
    return static_cast<std::int64_t>(res_.stats().fallback_allocations);
  }

 private:
  Guarded res_;
};
#endif

struct ResourceKind {
  const char* name;
  std::function<std::unique_ptr<BenchResource>()> make;
};

std::vector<ResourceKind> resource_kinds() {
  std::vector<ResourceKind> kinds{
      {"new_delete", [] { return std::make_unique<NewDeleteResource>(); }},
      {"unsync_pool", [] { return std::make_unique<PoolResource>(); }},
      {"monotonic", [] { return std::make_unique<MonotonicResource>(); }},
      {"jemalloc", [] { return std::make_unique<JemallocResource>(); }},
  };
#if GUARDARENA_BENCH_HAVE_GUARDED
  using Sync = GuardedResource<guardarena::guarded_resource>;
  using Unsync = GuardedResource<guardarena::unsynchronized_guarded_resource>;
  kinds.push_back({"guarded_full_guard", [] { return std::make_unique<Sync>("mode=full:backend=guard"); }});
  kinds.push_back(
      {"guarded_full_mprotect", [] { return std::make_unique<Sync>("mode=full:backend=mprotect"); }});
  kinds.push_back({"guarded_fast_guard", [] { return std::make_unique<Sync>("mode=fast:backend=guard"); }});
  kinds.push_back(
      {"unsync_guarded_fast_guard", [] { return std::make_unique<Unsync>("mode=fast:backend=guard"); }});
#endif
  return kinds;
}

// Builds the resource or skips the case with the reason (bad options string,
// jemalloc missing, out of memory).
std::unique_ptr<BenchResource> make_or_skip(benchmark::State& state, const ResourceKind& kind) {
  try {
    return kind.make();
  } catch (const std::exception& e) {
    state.SkipWithError((std::string(kind.name) + ": " + e.what()).c_str());
    return nullptr;
  }
}

// RunCounters plus what the resource itself counts: syscalls_per_op and
// fallback_allocations (a guarded resource that ran out of guard budget and
// served blocks unguarded is measuring something else; the counter says so).
class ResourceCounters {
 public:
  ResourceCounters(benchmark::State& state, const BenchResource& res) noexcept
      : state_(state), res_(res), run_(state) {}
  void start() noexcept {
    syscalls_at_start_ = res_.syscalls();
    run_.start();
  }
  void finish(std::int64_t ops) noexcept {
    run_.finish(ops);
    const std::int64_t syscalls = res_.syscalls();
    if (syscalls >= 0 && ops > 0) {
      state_.counters["syscalls_per_op"] =
          static_cast<double>(syscalls - syscalls_at_start_) / static_cast<double>(ops);
    }
    const std::int64_t fallbacks = res_.fallbacks();
    if (fallbacks >= 0) state_.counters["fallback_allocations"] = static_cast<double>(fallbacks);
  }

 private:
  benchmark::State& state_;
  const BenchResource& res_;
  RunCounters run_;
  std::int64_t syscalls_at_start_ = 0;
};

// ---- the workloads ---------------------------------------------------------
// Each takes the resource kind and the case's argument; one op is named in the
// comment. Containers are destroyed before any release().

// allocate + deallocate of one block of `size` bytes (16-byte aligned).
void pmr_alloc(benchmark::State& state, const ResourceKind& kind) {
  auto res = make_or_skip(state, kind);
  if (!res) return;
  const auto size = static_cast<std::size_t>(state.range(0));
  std::pmr::memory_resource* mr = res->mr();
  // Monotonic never reuses: give its memory back every 64 MiB (that cost is
  // part of using it).
  constexpr std::size_t kReleaseEvery = std::size_t{64} << 20;
  std::size_t grown = 0;
  const bool grows_only = res->grows_only();
  ResourceCounters counters(state, *res);
  counters.start();
  for (auto _ : state) {
    void* p = mr->allocate(size, 16);
    static_cast<volatile char*>(p)[0] = 1;
    mr->deallocate(p, size, 16);
    if (grows_only && (grown += size) > kReleaseEvery) {
      res->release();
      grown = 0;
    }
  }
  counters.finish(state.iterations());
}

// push_back of one int into a fresh pmr::vector (growth reallocations).
void pmr_vector(benchmark::State& state, const ResourceKind& kind) {
  auto res = make_or_skip(state, kind);
  if (!res) return;
  const auto n = static_cast<int>(state.range(0));
  ResourceCounters counters(state, *res);
  counters.start();
  for (auto _ : state) {
    {
      std::pmr::vector<int> v(res->mr());
      for (int i = 0; i < n; ++i) v.push_back(i);
      benchmark::DoNotOptimize(v.data());
    }
    if (res->grows_only()) res->release();
  }
  counters.finish(state.iterations() * n);
}

// One insert or erase in a map holding ~n keys (node allocate / deallocate).
template <class Map>
void pmr_map_churn(benchmark::State& state, const ResourceKind& kind) {
  auto res = make_or_skip(state, kind);
  if (!res) return;
  const auto n = static_cast<std::uint64_t>(state.range(0));
  {
    Map map(res->mr());
    Rng rng(5);
    for (std::uint64_t i = 0; i < n; ++i) map.emplace(static_cast<int>(rng.next() % (2 * n)), 1);
    ResourceCounters counters(state, *res);
    counters.start();
    for (auto _ : state) {
      const int key = static_cast<int>(rng.next() % (2 * n));
      auto it = map.find(key);
      if (it == map.end()) {
        map.emplace(key, 1);
      } else {
        map.erase(it);
      }
    }
    counters.finish(state.iterations());
  }
}

// Building one 48-character pmr::string from 8-character appends, kept in a
// pmr::vector of 100 (SSO is exceeded, so each string reallocates).
void pmr_string(benchmark::State& state, const ResourceKind& kind) {
  auto res = make_or_skip(state, kind);
  if (!res) return;
  constexpr int kStrings = 100;
  ResourceCounters counters(state, *res);
  counters.start();
  for (auto _ : state) {
    {
      std::pmr::vector<std::pmr::string> strings(res->mr());
      strings.reserve(kStrings);
      for (int i = 0; i < kStrings; ++i) {
        std::pmr::string& s = strings.emplace_back();
        for (int j = 0; j < 6; ++j) s.append("abcdefgh");
      }
      benchmark::DoNotOptimize(strings.data());
    }
    if (res->grows_only()) res->release();
  }
  counters.finish(state.iterations() * kStrings);
}

// Allocating one 64-byte block of n, then everything goes at once with
// release() (block-by-block deallocate for resources without release).
void pmr_fill_release(benchmark::State& state, const ResourceKind& kind) {
  auto res = make_or_skip(state, kind);
  if (!res) return;
  const auto n = static_cast<std::size_t>(state.range(0));
  std::pmr::memory_resource* mr = res->mr();
  std::vector<void*> blocks(n);
  ResourceCounters counters(state, *res);
  counters.start();
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) {
      blocks[i] = mr->allocate(64, 16);
      static_cast<volatile char*>(blocks[i])[0] = 1;
    }
    if (!res->release()) {
      for (void* p : blocks) mr->deallocate(p, 64, 16);
    }
  }
  counters.finish(state.iterations() * static_cast<std::int64_t>(n));
}

using Workload = void (*)(benchmark::State&, const ResourceKind&);

void register_pmr(Scale scale) {
  const JemallocApi& je = jemalloc_api();
  benchmark::AddCustomContext("jemalloc_replaces_malloc", je.error.empty() ? je.replaces_malloc : je.error);
  benchmark::AddCustomContext("guarded_resource",
                              GUARDARENA_BENCH_HAVE_GUARDED ? "built in" : "not built (no guardarena target)");

  const bool quick = scale == Scale::kQuick;
  std::vector<std::int64_t> sizes{16, 256, 4096, 65536, 1 << 20};
  if (quick) sizes = {16, 4096, 1 << 20};
  std::vector<std::int64_t> vector_lengths{1000, 100000};
  if (quick) vector_lengths = {1000};

  struct Case {
    const char* name;
    Workload fn;
    const char* arg_name;
    std::vector<std::int64_t> args;
  };
  const std::vector<Case> cases{
      {"pmr_alloc", pmr_alloc, "size", sizes},
      {"pmr_vector", pmr_vector, "n", vector_lengths},
      {"pmr_map_churn", pmr_map_churn<std::pmr::map<int, int>>, "n", {1000}},
      {"pmr_unordered_map_churn", pmr_map_churn<std::pmr::unordered_map<int, int>>, "n", {1000}},
      {"pmr_string", pmr_string, "strings", {100}},
      {"pmr_fill_release", pmr_fill_release, "n", {10000}},
  };
  // Static so the lambdas' captured references outlive registration.
  static const std::vector<ResourceKind> kinds = resource_kinds();
  for (const Case& c : cases) {
    for (const ResourceKind& kind : kinds) {
      const std::string name = std::string(c.name) + "/" + kind.name;
      auto* b = benchmark::RegisterBenchmark(
          name.c_str(), [fn = c.fn, &kind](benchmark::State& state) { fn(state, kind); });
      b->ArgName(c.arg_name)->UseRealTime();
      for (std::int64_t arg : c.args) b->Arg(arg);
    }
  }
}

const RegisterSuite kRegistered(register_pmr);

}  // namespace
}  // namespace guardarena::bench
