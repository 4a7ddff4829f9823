// std::pmr adapter over the arena: translation only (allocate, deallocate,
// identity), no policy. The only layer that throws, because
// std::pmr::memory_resource requires std::bad_alloc on failure.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/arena.h"
#include "guardarena/guardarena.hpp"
#include "options/options.h"
#include "os/raw_writer.h"
#include "report/notices.h"
#include "report/report.h"
#include "report/secure_options.h"
#include "stack/stack_cache.h"

namespace guardarena {
namespace {

// splitmix64's finaliser: which allocations a sampling resource guards is a
// hash of their sequence number, so the chosen ones never fall into step
// with a program's own allocation pattern (every second block, ...).
std::uint64_t mix(std::uint64_t x) noexcept {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The upstream of a resource given none: malloc's aligned allocation. Not
// new_delete_resource: its huge requests end the process under ASan instead
// of failing, and one guarded resource made the default would otherwise
// become the upstream of every resource made after it.
class MallocResource final : public std::pmr::memory_resource {
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    void* p = nullptr;
    if (align < sizeof(void*)) align = sizeof(void*);
    if (::posix_memalign(&p, align, bytes == 0 ? 1 : bytes) != 0) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t, std::size_t) override { std::free(p); }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

// Never destroyed: resources may outlive static destruction.
std::pmr::memory_resource* malloc_resource() noexcept {
  alignas(MallocResource) static unsigned char storage[sizeof(MallocResource)];
  static MallocResource* r = new (storage) MallocResource;
  return r;
}

}  // namespace

// The blocks this resource took from its upstream, with the size and
// alignment the upstream must get back, and the sampler's state.
struct guarded_resource::upstream_blocks {
  std::pmr::memory_resource* upstream;
  std::mutex mu;
  std::unordered_map<void*, std::pair<std::size_t, std::size_t>> out;
  std::atomic<std::uint64_t> seen{0};
  std::uint64_t seed;

  void* allocate(std::size_t size, std::size_t align) {
    // No object is larger than PTRDIFF_MAX; and libstdc++'s aligned operator
    // new (under new_delete_resource) rounds such a size up past SIZE_MAX and
    // returns a tiny block for it.
    if (size > static_cast<std::size_t>(PTRDIFF_MAX) - align) throw std::bad_alloc();
    void* p = upstream->allocate(size, align);
    try {
      std::lock_guard<std::mutex> lock(mu);
      out.emplace(p, std::pair{size, align});
    } catch (...) {
      upstream->deallocate(p, size, align);
      throw;
    }
    return p;
  }
  // False when `p` is not one of them.
  bool deallocate(void* p) noexcept {
    std::pair<std::size_t, std::size_t> block;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = out.find(p);
      if (it == out.end()) return false;
      block = it->second;
      out.erase(it);
    }
    upstream->deallocate(p, block.first, block.second);
    return true;
  }
  void release_all() noexcept {
    std::unordered_map<void*, std::pair<std::size_t, std::size_t>> taken;
    {
      std::lock_guard<std::mutex> lock(mu);
      taken.swap(out);
    }
    for (const auto& [p, block] : taken) upstream->deallocate(p, block.first, block.second);
  }

  // The core's exhaustion fallback: the same upstream, the same records.
  static void* fallback_allocate(void* self, std::size_t size, std::size_t align) noexcept {
    try {
      return static_cast<upstream_blocks*>(self)->allocate(size, align);
    } catch (...) {
      return nullptr;
    }
  }
  static void fallback_deallocate(void* self, void* p) noexcept {
    static_cast<upstream_blocks*>(self)->deallocate(p);
  }
};

options::options() : values_(std::make_unique<Options>()) {}
options::options(std::string_view text) : options() {
  set(text);
}
options::options(const options& other) : values_(std::make_unique<Options>(*other.values_)) {}
options& options::operator=(const options& other) {
  *values_ = *other.values_;
  return *this;
}
options::~options() = default;

options& options::set(std::string_view text) {
  Options updated = *values_;
  std::string s(text);
  char error[512];
  if (!parse_options(s.c_str(), updated, error, sizeof error)) throw std::invalid_argument(error);
  *values_ = updated;
  return *this;
}

std::string options::get(std::string_view name) const {
  const OptionInfo* table = option_table();
  for (std::size_t i = 0; i < kOptionCount; ++i) {
    if (name != table[i].name) continue;
    char buf[320];
    RawWriter w(buf, sizeof buf);
    format_value(*values_, i, w);
    return std::string(w.data(), w.size());
  }
  throw std::invalid_argument("guardarena: unknown option '" + std::string(name) + "'");
}

options parse_options(std::string_view text) {
  return options(text);
}

guarded_resource::guarded_resource() : guarded_resource(options{}, nullptr) {}
guarded_resource::guarded_resource(const options& o) : guarded_resource(o, nullptr) {}
guarded_resource::guarded_resource(std::string_view text)
    : guarded_resource(guardarena::parse_options(text), nullptr) {}
guarded_resource::guarded_resource(std::string_view text, std::pmr::memory_resource* upstream)
    : guarded_resource(guardarena::parse_options(text), upstream) {}
guarded_resource::guarded_resource(const options& o, std::pmr::memory_resource* upstream)
    : upstream_(upstream != nullptr ? upstream : malloc_resource()),
      upstream_blocks_(std::make_unique<upstream_blocks>()) {
  upstream_blocks_->upstream = upstream_;
  upstream_blocks_->seed = mix(reinterpret_cast<std::uintptr_t>(this) ^
                               static_cast<std::uint64_t>(std::random_device{}()));
  init(o);
}

void guarded_resource::init(const options& opts) {
  options_ = opts;
  const Options& o = *options_.values_;
  char error[512];
  Options checked = o;
  if (!parse_options(nullptr, checked, error, sizeof error)) throw std::invalid_argument(error);
  // A setuid program that builds its options from its environment hands its
  // caller the same levers as the shim's GUARDARENA_OPTIONS.
  if (report::enforce_secure_execution(checked)) *options_.values_ = checked;
  {
    // The report configuration and the stack depot are process-wide and
    // configure() is not thread-safe: resources constructed at once on
    // several threads configure one after the other, and only the first
    // sizes the depot.
    static std::mutex configure_mu;
    std::lock_guard<std::mutex> lock(configure_mu);
    report::configure(checked);
    report::configure_stacks(checked);
    if (checked.handle_segv) report::install_fault_handler();
  }
  storage_ =
      static_cast<unsigned char*>(::operator new (Arena::storage_size(), std::align_val_t{64}));
  ArenaError why = ArenaError::kNone;
  arena_ =
      Arena::create(storage_, checked,
                    FallbackAllocator{upstream_blocks::fallback_allocate,
                                      upstream_blocks::fallback_deallocate, upstream_blocks_.get()},
                    &why);
  if (arena_ == nullptr) {
    ::operator delete (storage_, std::align_val_t{64});
    storage_ = nullptr;
    // Running out of address space or registry slots is exhaustion
    // (bad_alloc); a missing backend or unmappable metadata is not.
    if (why == ArenaError::kNoAddressSpace || why == ArenaError::kRegistryFull)
      throw std::bad_alloc();
    throw std::runtime_error(arena_error_message(why));
  }
  report::warn_if_guard_markers_ignored(checked);
}

guarded_resource::~guarded_resource() {
  if (arena_ != nullptr) arena_->~Arena();
  ::operator delete (storage_, std::align_val_t{64});
  upstream_blocks_->release_all();
}

void guarded_resource::release() noexcept {
  arena_->release_all();
  upstream_blocks_->release_all();
}

std::size_t guarded_resource::check() const noexcept {
  return report::check_heap(*arena_, "found by guarded_resource::check()", false);
}

bool guarded_resource::should_guard(std::size_t bytes) noexcept {
  const Options& o = *options_.values_;
  if (bytes < o.min_size || (o.max_size != 0 && bytes > o.max_size)) return false;
  if (o.sample_rate <= 1 && o.sample_after == 0) return true;
  const std::uint64_t n = upstream_blocks_->seen.fetch_add(1, std::memory_order_relaxed);
  if (n < o.sample_after) return false;
  return o.sample_rate <= 1 || mix(n ^ upstream_blocks_->seed) % o.sample_rate == 0;
}
// The public counters mirror the core's field for field.
static_assert(sizeof(arena_stats) == sizeof(ArenaStats));

arena_stats guarded_resource::stats() const noexcept {
  const ArenaStats s = arena_->stats();
  arena_stats out;
  out.live_blocks = s.live_blocks;
  out.live_bytes = s.live_bytes;
  out.peak_live_blocks = s.peak_live_blocks;
  out.peak_live_bytes = s.peak_live_bytes;
  out.guarded_allocations = s.guarded_allocations;
  out.fallback_allocations = s.fallback_allocations;
  out.fallback_live = s.fallback_live;
  out.failed_allocations = s.failed_allocations;
  out.quarantined_blocks = s.quarantined_blocks;
  out.quarantined_bytes = s.quarantined_bytes;
  out.vmas_in_use = s.vmas_in_use;
  out.reserved_bytes = s.reserved_bytes;
  out.syscalls = s.syscalls;
  out.backend = s.backend;
  out.memory_budget = s.memory_budget;
  out.memory_budget_source = s.memory_budget_source;
  out.guarded_resident_bytes = s.guarded_resident_bytes;
  out.peak_guarded_resident_bytes = s.peak_guarded_resident_bytes;
  out.unguarded_at_limit = s.unguarded_at_limit;
  out.guard_sample_rate = s.guard_sample_rate;
  return out;
}
const options& guarded_resource::get_options() const noexcept {
  return options_;
}
bool guarded_resource::owns(const void* p) const noexcept {
  return arena_->owns_block(p);
}

void* guarded_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  // memory_resource requires a power-of-two alignment and the arena's
  // placement math assumes one: anything else (0, 24, ...) is refused rather
  // than answered with a block that cannot honour it.
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw std::bad_alloc();
  if (!should_guard(bytes)) return upstream_blocks_->allocate(bytes, alignment);
  // Stacks start at the caller of memory_resource::allocate.
  stack::EntryFrameScope entry(__builtin_frame_address(0));
  void* p = arena_->allocate(bytes, alignment, AllocKind::kPmr, false);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void guarded_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  // Stacks, reports' included, start at the caller of memory_resource::deallocate.
  stack::EntryFrameScope entry(__builtin_frame_address(0));
  if (arena_->deallocate(p, bytes, alignment, AllocKind::kPmr) == Arena::FreeResult::kNotOurs &&
      !upstream_blocks_->deallocate(p)) {
    report::Report r;
    r.kind = ErrorKind::kInvalidFree;
    r.address = reinterpret_cast<std::uintptr_t>(p);
    r.dealloc_kind = static_cast<std::uint8_t>(AllocKind::kPmr);
    report::report_and_abort(r);
  }
}

bool guarded_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
  return this == &other;
}

}  // namespace guardarena
