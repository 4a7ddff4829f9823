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
#pragma once

#include <cstddef>
#include <memory_resource>
#include <string_view>

#include "core/arena.h"
#include "options/options.h"

namespace guardarena {

using options = Options;
using arena_stats = ArenaStats;

// Parses an options string ("protect_below=1:backend=mprotect:quarantine_bytes=1M")
// on top of the defaults; throws std::invalid_argument naming the bad key.
options parse_options(std::string_view text);

class guarded_resource : public std::pmr::memory_resource {
 public:
  guarded_resource();
  explicit guarded_resource(const options& o);
  // Throws std::invalid_argument on a bad options string, std::bad_alloc when
  // no address space can be reserved or 256 resources are alive already,
  // std::runtime_error when the requested backend is unavailable.
  explicit guarded_resource(std::string_view options_text);
  ~guarded_resource() override;

  guarded_resource(const guarded_resource&) = delete;
  guarded_resource& operator=(const guarded_resource&) = delete;

  // Frees everything this resource handed out, in one step. Pointers into
  // the arena become inaccessible (touching one faults).
  void release() noexcept;

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
  void init(const options& o);
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

}  // namespace guardarena
