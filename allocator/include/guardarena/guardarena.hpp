// guardarena: guard-page arena allocator, public C++ API.
//
// guarded_resource is a std::pmr::memory_resource whose every allocation sits
// in its own page-rounded slot against a PROT_NONE guard page: a heap
// overflow faults on the faulting instruction, a use-after-free on the first
// touch, and free-time checks catch double frees, foreign pointers, size
// mismatches and small overflows into the slack (canaries).
//
//   guardarena::guarded_resource arena{"mode=full:backend=auto"};
//   std::pmr::vector<int> v{&arena};
//
// Thread safety: guarded_resource may be used from any number of threads.
// unsynchronized_guarded_resource has the same API for single-threaded use.
//
// Self-contained: standard headers only, and no layout of guardarena's own
// (options and the arena are held by pointer), so the library can change
// without breaking programs built against this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>

namespace guardarena {

class Arena;  // the library's own; opaque here
struct Options;

// The options of a resource: every option at its default until set() says
// otherwise. The names and values are those of GUARDARENA_OPTIONS (help=1,
// or docs/options.md, lists them).
class options {
 public:
  options();
  // options().set(text).
  explicit options(std::string_view text);
  options(const options& other);
  options& operator=(const options& other);
  ~options();

  // Applies "name=value" pairs separated by ':' or ',' on top of the current
  // values, then checks the rules between options. Throws
  // std::invalid_argument naming the key on an unknown name, a bad value or
  // a broken rule (the options are then left as they were).
  options& set(std::string_view text);
  // The value of option `name` as text ("fast", "1", "256M", ...). Throws
  // std::invalid_argument for an unknown name.
  std::string get(std::string_view name) const;

 private:
  friend class guarded_resource;
  std::unique_ptr<Options> values_;
};

// Parses an options string ("protect_below=1:backend=mprotect:quarantine_bytes=1M")
// on top of the defaults; throws std::invalid_argument naming the bad key.
options parse_options(std::string_view text);

// A resource's counters (a snapshot; other threads' fast-mode counts arrive
// at their next refill, flush or exit).
struct arena_stats {
  std::uint64_t live_blocks = 0;
  std::uint64_t live_bytes = 0;
  std::uint64_t peak_live_blocks = 0;
  std::uint64_t peak_live_bytes = 0;
  std::uint64_t guarded_allocations = 0;   // total, since creation or release()
  std::uint64_t fallback_allocations = 0;  // total unguarded (exhaustion)
  std::uint64_t fallback_live = 0;
  std::uint64_t failed_allocations = 0;  // nullptr returned (on_exhaustion=fail)
  std::uint64_t quarantined_blocks = 0;
  std::uint64_t quarantined_bytes = 0;
  std::uint64_t vmas_in_use = 0;  // mprotect backend: estimated mappings for live blocks
  std::uint64_t reserved_bytes = 0;
  std::uint64_t syscalls = 0;  // made by guardarena's OS layer, all threads
  const char* backend = "";    // "guard" or "mprotect"
  // The memory budget (option max_guarded_memory): this resource's limit
  // (0 = none) and its source ("option", "cgroup", "physical", "none"); the
  // resident memory guarding adds in the whole process, now and at peak.
  std::uint64_t memory_budget = 0;
  const char* memory_budget_source = "";
  std::uint64_t guarded_resident_bytes = 0;
  std::uint64_t peak_guarded_resident_bytes = 0;
  // Blocks served unguarded (by the upstream) because a limit on guarding
  // was reached, and the rate in force: one new allocation in N is guarded.
  std::uint64_t unguarded_at_limit = 0;
  std::uint64_t guard_sample_rate = 1;
};

// Like the standard resources, a guarded_resource sits on an upstream
// resource: the allocations its options leave unguarded (sample_rate,
// sample_after, min_size, max_size, and with on_exhaustion=fallback those no
// guard page is left for) come from the upstream and go back to it. Without
// one, the upstream is malloc (posix_memalign/free), so that a guarded
// resource made the default does not become the upstream of the next one.
class guarded_resource : public std::pmr::memory_resource {
 public:
  guarded_resource();
  explicit guarded_resource(const options& o);
  // Throws std::invalid_argument on a bad options string, std::bad_alloc when
  // no address space can be reserved or 256 resources are alive already,
  // std::runtime_error when the requested backend is unavailable.
  explicit guarded_resource(std::string_view options_text);
  guarded_resource(const options& o, std::pmr::memory_resource* upstream);
  guarded_resource(std::string_view options_text, std::pmr::memory_resource* upstream);
  ~guarded_resource() override;

  guarded_resource(const guarded_resource&) = delete;
  guarded_resource& operator=(const guarded_resource&) = delete;

  // Frees everything this resource handed out, in one step. Pointers into
  // the arena become inaccessible (touching one faults); blocks from the
  // upstream go back to it.
  void release() noexcept;

  // Heap check: reports (like any other error) every live block of this
  // resource whose canaries are damaged and, in fast mode, every quarantined
  // block whose poison changed. Returns how many; ends nothing. Call it where
  // no other thread uses the resource.
  std::size_t check() const noexcept;

  std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }

  arena_stats stats() const noexcept;
  const options& get_options() const noexcept;
  // True when `p` is a live block of this resource.
  bool owns(const void* p) const noexcept;

 protected:
  // Throws std::bad_alloc when neither the arena nor (on_exhaustion=fallback)
  // the system allocator can serve the request, and when `alignment` is not a
  // power of two.
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

 private:
  struct upstream_blocks;  // the blocks out from the upstream, and the sampler
  void init(const options& o);
  bool should_guard(std::size_t bytes) noexcept;
  options options_;
  std::pmr::memory_resource* upstream_ = nullptr;
  std::unique_ptr<upstream_blocks> upstream_blocks_;
  unsigned char* storage_ = nullptr;
  Arena* arena_ = nullptr;
};

// Same checks and API; meant for one thread at a time, like
// std::pmr::unsynchronized_pool_resource. (The arena's per-class locks are
// uncontended there; they are kept so a misuse cannot corrupt the heap.)
class unsynchronized_guarded_resource : public guarded_resource {
 public:
  using guarded_resource::guarded_resource;
};

// Makes `resource` the default memory resource
// (std::pmr::get_default_resource()) for the rest of the scope and restores
// the one before it at the end:
//   guardarena::guarded_resource guarded;
//   guardarena::scoped_default_resource scope{&guarded};
//   std::pmr::vector<int> v;  // guarded
class scoped_default_resource {
 public:
  explicit scoped_default_resource(std::pmr::memory_resource* resource) noexcept
      : previous_(std::pmr::set_default_resource(resource)) {}
  ~scoped_default_resource() { std::pmr::set_default_resource(previous_); }
  scoped_default_resource(const scoped_default_resource&) = delete;
  scoped_default_resource& operator=(const scoped_default_resource&) = delete;
  std::pmr::memory_resource* previous() const noexcept { return previous_; }

 private:
  std::pmr::memory_resource* previous_;
};

}  // namespace guardarena
