// The exhaustion policy's unguarded blocks (core/fallback.h).
#include "core/fallback.h"

#include <cstring>

#include "core/hooks.h"
#include "os/raw_writer.h"

namespace guardarena {
namespace {

std::atomic<bool> g_warned_fallback{false};

}  // namespace

bool claim_exhaustion_warning() noexcept {
  return !g_warned_fallback.load(std::memory_order_relaxed) && !g_warned_fallback.exchange(true);
}

namespace {

void warn_fallback_once(const char* why) noexcept {
  if (!claim_exhaustion_warning()) return;
  char buf[512];
  RawWriter w(buf, sizeof buf);
  w.str("guardarena: warning: ")
      .str(why)
      .str(
          "; serving further blocks unguarded from the system allocator (on_exhaustion=fallback). "
          "Raise vm.max_map_count, use backend=guard (Linux 6.13+), or sample_rate=N.\n");
  write_warning(w.data(), w.size());
}

}  // namespace

bool FallbackBlocks::init(Exhaustion policy, FallbackAllocator alloc) noexcept {
  policy_ = policy;
  alloc_ = alloc;
  return set_.init(std::size_t{1} << 16);
}

void FallbackBlocks::destroy() noexcept {
  release_all();
  set_.destroy();
}

void* FallbackBlocks::serve(std::size_t size, std::size_t align, bool zero,
                            const char* why) noexcept {
  if (policy_ == Exhaustion::kFail || alloc_.allocate == nullptr) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  void* p = alloc_.allocate(alloc_.context, size == 0 ? 1 : size, align < 16 ? 16 : align);
  if (p == nullptr) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (!set_.insert(reinterpret_cast<std::uintptr_t>(p))) {
    alloc_.deallocate(alloc_.context, p);
    failed_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  warn_fallback_once(why);
  if (zero) std::memset(p, 0, size);
  served_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

bool FallbackBlocks::free_if_ours(std::uintptr_t p) noexcept {
  if (!set_.erase(p)) return false;
  alloc_.deallocate(alloc_.context, reinterpret_cast<void*>(p));
  return true;
}

void FallbackBlocks::release_all() noexcept {
  set_.drain(
      [this](std::uintptr_t p) { alloc_.deallocate(alloc_.context, reinterpret_cast<void*>(p)); });
}

}  // namespace guardarena
