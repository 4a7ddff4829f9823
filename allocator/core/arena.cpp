// Arena creation and the process's registry of arenas. The arena itself is
// ArenaImpl (arena_impl.h, arena_fast_mode.h, arena_slots.h, arena_limits.h,
// arena_whole_heap.h), templated over the guard backend and chosen here, once
// per arena.
#include "core/arena.h"

#include <algorithm>
#include <new>

#include "core/arena_fast_mode.h"
#include "core/arena_impl.h"
#include "core/arena_limits.h"
#include "core/arena_slots.h"
#include "core/arena_whole_heap.h"
#include "core/registry.h"
#include "core/thread_cache.h"
#include "os/guard_backend.h"
#include "os/os_linux.h"

namespace guardarena {
namespace {

constexpr std::size_t kMaxArenas = 256;
Registry<Arena, kMaxArenas> g_arenas;

template <class Impl>
Arena* construct(void* storage, const Options& o, FallbackAllocator fb,
                 ArenaError* error) noexcept {
  auto* a = new (storage) Impl(o, fb);
  if (!a->init(error)) {
    a->~Impl();
    return nullptr;
  }
  if (g_arenas.add(a)) return a;
  // An arena missing from the registry would run without fault reports
  // (find_owner) and, in fast mode, silently drop other threads' cached slots
  // and counters (is_current): refuse it rather than guard it half.
  a->~Impl();
  *error = ArenaError::kRegistryFull;
  return nullptr;
}

}  // namespace

std::size_t Arena::storage_size() noexcept {
  return std::max(sizeof(ArenaImpl<os::GuardRegionBackend>),
                  sizeof(ArenaImpl<os::MprotectBackend>));
}

const char* arena_error_message(ArenaError e) noexcept {
  switch (e) {
    case ArenaError::kNone:
      return "guardarena: no error";
    case ArenaError::kBackendUnavailable:
      return "guardarena: backend=guard needs MADV_GUARD_INSTALL (Linux 6.13+); this kernel lacks "
             "it (use backend=mprotect or auto)";
    case ArenaError::kNoAddressSpace:
      return "guardarena: cannot reserve address space for the arena (ulimit -v too low?)";
    case ArenaError::kNoMetadata:
      return "guardarena: cannot map allocator metadata";
    case ArenaError::kRegistryFull:
      return "guardarena: cannot reserve a registry slot: 256 arenas are alive already";
  }
  return "guardarena: cannot create the arena";
}

Arena* Arena::create(void* storage, const Options& o, FallbackAllocator fb,
                     ArenaError* error) noexcept {
  ArenaError ignored = ArenaError::kNone;
  if (error == nullptr) error = &ignored;
  *error = ArenaError::kNone;
  bool guard = false;
  switch (o.backend) {
    case Backend::kGuard:
      if (os::guard_support() == os::GuardSupport::kAbsent) {
        *error = ArenaError::kBackendUnavailable;
        return nullptr;
      }
      // Accepted but not enforced: markers would guard nothing, so the
      // blocks get mprotect guards (the front end says so once).
      guard = os::guard_regions_supported();
      break;
    case Backend::kMprotect:
      guard = false;
      break;
    case Backend::kAuto:
      guard = os::guard_regions_supported();
      break;
  }
  if (guard) return construct<ArenaImpl<os::GuardRegionBackend>>(storage, o, fb, error);
  return construct<ArenaImpl<os::MprotectBackend>>(storage, o, fb, error);
}

Arena* Arena::find_owner(std::uintptr_t addr) noexcept {
  return g_arenas.find(
      [addr](const Arena& a) { return a.owns(reinterpret_cast<const void*>(addr)); });
}

bool Arena::is_current(const Arena* a, std::uint64_t epoch) noexcept {
  return g_arenas.contains(a) && a->epoch() == epoch;
}

void unregister_arena(Arena* a) noexcept {
  handback_lock().lock();  // no hand-back into `a` in flight
  g_arenas.remove(a);
  handback_lock().unlock();
}

}  // namespace guardarena
