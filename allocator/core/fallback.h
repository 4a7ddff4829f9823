// The unguarded side of the exhaustion policy: when no guarded slot can
// serve a request (address space, the VMA budget or the kernel's guard pages
// used up), on_exhaustion=fail answers nullptr and on_exhaustion=fallback
// serves the block from the system allocator, says so once and remembers the
// block, so that its free comes back here and a foreign pointer is still told
// from it.
//
// Thread safety: every member is thread-safe (one mutex around the set;
// erase() and contains() skip it while the set is empty).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "options/options.h"
#include "os/os_linux.h"

namespace guardarena {

// The process's one warning that guarding degraded: true for the first
// caller only, who writes it. serve() writes a generic one unless a caller
// with more to say (a budget and its rate) claimed it first.
bool claim_exhaustion_warning() noexcept;

// Where unguarded fallback blocks come from when guard pages run out: the
// shim passes glibc's allocator, the pmr resource its upstream resource.
// `context` is handed back to both functions unchanged.
struct FallbackAllocator {
  void* (*allocate)(void* context, std::size_t size, std::size_t align) noexcept = nullptr;
  void (*deallocate)(void* context, void* p) noexcept = nullptr;
  void* context = nullptr;
};

// Open-addressing set of fallback pointers, so deallocate() can tell an
// unguarded block of ours from a foreign pointer. Only used after exhaustion.
class FallbackSet {
 public:
  // `capacity`: a power of two; the table doubles when three quarters full.
  bool init(std::size_t capacity) noexcept {
    cap_ = capacity;
    slots_ =
        static_cast<std::uintptr_t*>(os::map_internal(cap_ * sizeof(std::uintptr_t), "fallback"));
    return slots_ != nullptr;
  }
  void destroy() noexcept { os::release(slots_, cap_ * sizeof(std::uintptr_t)); }
  bool insert(std::uintptr_t p) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    if ((count_ + 1) * 4 > cap_ * 3 && !grow_locked()) return false;
    for (std::size_t i = hash(p);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == 0) {
        slots_[i] = p;
        ++count_;
        size_.store(count_, std::memory_order_relaxed);
        return true;
      }
    }
  }
  bool erase(std::uintptr_t p) noexcept {
    if (size_.load(std::memory_order_relaxed) == 0) return false;
    std::lock_guard<std::mutex> g(mu_);
    std::size_t i = hash(p);
    for (;; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == 0) return false;
      if (slots_[i] == p) break;
    }
    // Backward-shift deletion (Knuth's Algorithm R), no tombstones: an
    // erased entry leaves an empty slot, so the table never fills with dead
    // entries and every lookup of an absent pointer (owns_block, free of a
    // glibc block) ends at an empty slot. Each entry after the hole moves
    // back into it unless its home slot lies cyclically in (hole, its
    // position].
    for (std::size_t j = i;;) {
      j = (j + 1) & (cap_ - 1);
      if (slots_[j] == 0) break;
      std::size_t home = hash(slots_[j]);
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = 0;
    --count_;
    size_.store(count_, std::memory_order_relaxed);
    return true;
  }
  bool contains(std::uintptr_t p) const noexcept {
    if (size_.load(std::memory_order_relaxed) == 0) return false;
    std::lock_guard<std::mutex> g(mu_);
    for (std::size_t i = hash(p);; i = (i + 1) & (cap_ - 1)) {
      if (slots_[i] == 0) return false;
      if (slots_[i] == p) return true;
    }
  }
  // Calls fn on every member and empties the set.
  template <class F>
  void drain(F fn) noexcept {
    std::lock_guard<std::mutex> g(mu_);
    // An empty set is all zeros: skip the 8 MiB sweep, which every release()
    // and destruction paid (and kept resident) even when nothing fell back.
    if (count_ == 0) return;
    for (std::size_t i = 0; i < cap_; ++i) {
      if (slots_[i] != 0) fn(slots_[i]);
    }
    os::discard(slots_, cap_ * sizeof(std::uintptr_t));
    count_ = 0;
    size_.store(0, std::memory_order_relaxed);
  }
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  void lock() noexcept { mu_.lock(); }
  void unlock() noexcept { mu_.unlock(); }

 private:
  // Doubles the table (a program can fall back for millions of blocks once
  // the VMA budget is gone); false only when the kernel refuses the memory.
  bool grow_locked() noexcept {
    std::size_t new_cap = cap_ * 2;
    auto* fresh = static_cast<std::uintptr_t*>(
        os::map_internal(new_cap * sizeof(std::uintptr_t), "fallback"));
    if (fresh == nullptr) return false;
    std::uintptr_t* old = slots_;
    std::size_t old_cap = cap_;
    slots_ = fresh;
    cap_ = new_cap;
    for (std::size_t k = 0; k < old_cap; ++k) {
      if (old[k] == 0) continue;
      std::size_t i = hash(old[k]);
      while (slots_[i] != 0) i = (i + 1) & (cap_ - 1);
      slots_[i] = old[k];
    }
    os::release(old, old_cap * sizeof(std::uintptr_t));
    return true;
  }
  std::size_t hash(std::uintptr_t p) const noexcept {
    return static_cast<std::size_t>((p >> 4) * 0x9E3779B97F4A7C15ull >> 20) & (cap_ - 1);
  }
  mutable std::mutex mu_;
  std::uintptr_t* slots_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t count_ = 0;
  std::atomic<std::size_t> size_{0};
};

// The exhaustion policy over a FallbackSet and its counters.
class FallbackBlocks {
 public:
  // false when the set cannot be mapped.
  bool init(Exhaustion policy, FallbackAllocator alloc) noexcept;
  // Frees every block still out and unmaps the set.
  void destroy() noexcept;

  // A request no guarded slot can serve: nullptr (counted as failed) when
  // the policy is fail, no allocator was given or it refuses; else an
  // unguarded block, zeroed when `zero`. The first block served in the
  // process writes one warning naming `why`.
  void* serve(std::size_t size, std::size_t align, bool zero, const char* why) noexcept;
  // Frees `p` when it is one of the blocks served here: true. False for any
  // other pointer (left alone).
  bool free_if_ours(std::uintptr_t p) noexcept;
  bool contains(std::uintptr_t p) const noexcept { return set_.contains(p); }
  // Frees every block served here (release()).
  void release_all() noexcept;
  void reset_counters() noexcept {
    served_ = 0;
    failed_ = 0;
  }

  std::uint64_t served() const noexcept { return served_.load(std::memory_order_relaxed); }
  std::uint64_t failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  std::uint64_t live() const noexcept { return set_.size(); }

  // fork(): the set's lock.
  void lock() noexcept { set_.lock(); }
  void unlock() noexcept { set_.unlock(); }

 private:
  Exhaustion policy_ = Exhaustion::kFail;
  FallbackAllocator alloc_;
  FallbackSet set_;
  std::atomic<std::uint64_t> served_{0};
  std::atomic<std::uint64_t> failed_{0};
};

}  // namespace guardarena
