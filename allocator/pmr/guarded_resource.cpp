// std::pmr adapter over the arena: translation only (allocate, deallocate,
// identity), no policy. The only layer that throws, because
// std::pmr::memory_resource requires std::bad_alloc on failure.
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

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

void* fallback_allocate(std::size_t size, std::size_t align) noexcept {
  void* p = nullptr;
  if (align < sizeof(void*)) align = sizeof(void*);
  return ::posix_memalign(&p, align, size) == 0 ? p : nullptr;
}
void fallback_deallocate(void* p) noexcept {
  std::free(p);
}

}  // namespace

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

guarded_resource::guarded_resource() {
  init(options{});
}
guarded_resource::guarded_resource(const options& o) {
  init(o);
}
guarded_resource::guarded_resource(std::string_view text) {
  init(guardarena::parse_options(text));
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
  arena_ = Arena::create(storage_, checked,
                         FallbackAllocator{fallback_allocate, fallback_deallocate}, &why);
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
}

void guarded_resource::release() noexcept {
  arena_->release_all();
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
  // Stacks start at the caller of memory_resource::allocate.
  stack::EntryFrameScope entry(__builtin_frame_address(0));
  void* p = arena_->allocate(bytes, alignment, AllocKind::kPmr, false);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void guarded_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  // Stacks, reports' included, start at the caller of memory_resource::deallocate.
  stack::EntryFrameScope entry(__builtin_frame_address(0));
  if (arena_->deallocate(p, bytes, alignment, AllocKind::kPmr) == Arena::FreeResult::kNotOurs) {
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
