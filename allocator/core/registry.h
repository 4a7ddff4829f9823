// A fixed, lock-free registry of live objects (the process's arenas): the
// fault handler looks up which arena owns an address, and a thread cache
// checks that the arena it belongs to still exists before it gives its slots
// back. A fixed array of atomic pointers: no allocation, and lookups are
// async-signal-safe.
//
// Thread safety: add, remove and lookups are lock-free. A pointer found may
// be removed (and its object destroyed) right after: callers that use the
// object hold a lock the remover also takes (see the arena's hand-back lock).
#pragma once

#include <atomic>
#include <cstddef>

namespace guardarena {

template <class T, std::size_t N>
class Registry {
 public:
  static constexpr std::size_t kCapacity = N;

  // false when all N places are taken.
  bool add(T* t) noexcept {
    for (auto& slot : slots_) {
      T* expected = nullptr;
      if (slot.compare_exchange_strong(expected, t, std::memory_order_acq_rel)) return true;
    }
    return false;
  }
  // false when `t` is not registered.
  bool remove(T* t) noexcept {
    for (auto& slot : slots_) {
      T* expected = t;
      if (slot.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) return true;
    }
    return false;
  }
  bool contains(const T* t) const noexcept {
    for (auto& slot : slots_) {
      if (slot.load(std::memory_order_acquire) == t) return true;
    }
    return false;
  }
  // The first registered object for which pred(object) holds, or nullptr.
  template <class Pred>
  T* find(Pred pred) const noexcept {
    for (auto& slot : slots_) {
      T* t = slot.load(std::memory_order_acquire);
      if (t != nullptr && pred(*t)) return t;
    }
    return nullptr;
  }

 private:
  std::atomic<T*> slots_[N] = {};
};

}  // namespace guardarena
