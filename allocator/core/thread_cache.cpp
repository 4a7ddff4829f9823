// The hand-back protocol of fast mode's thread caches (core/thread_cache.h).
#include "core/thread_cache.h"

#include <pthread.h>

#include "core/arena.h"

namespace guardarena {

constinit __attribute__((tls_model("initial-exec"),
                         visibility("hidden"))) thread_local ThreadCache t_cache;

namespace {

os::SharedSpinLock g_handback_lock;
pthread_key_t g_cache_key;
pthread_once_t g_cache_key_once = PTHREAD_ONCE_INIT;

void return_cache_at_thread_exit(void* p) {
  auto* tc = static_cast<ThreadCache*>(p);
  return_cache_to_owner(*tc);
  tc->owner = nullptr;
}

void create_cache_key() {
  pthread_key_create(&g_cache_key, return_cache_at_thread_exit);
}

}  // namespace

os::SharedSpinLock& handback_lock() noexcept {
  return g_handback_lock;
}

void return_cache_to_owner(ThreadCache& tc) noexcept {
  if (tc.owner == nullptr) return;
  g_handback_lock.lock_shared();
  if (Arena::is_current(tc.owner, tc.epoch)) tc.owner->absorb_thread_cache(tc);
  g_handback_lock.unlock_shared();
}

void attach(ThreadCache& tc, Arena* owner, std::uint64_t epoch) noexcept {
  return_cache_to_owner(tc);
  for (SlotFifo& f : tc.free) f.clear();
  tc.quarantine.clear();
  tc.q_bytes = tc.folded_q_count = tc.folded_q_bytes = 0;
  tc.live_blocks = tc.live_bytes = 0;
  tc.bound_threads = 0;  // shares recomputed at the next free
  tc.allocations = 0;
  tc.owner = owner;
  tc.epoch = epoch;
  if (!tc.exit_hook) {
    pthread_once(&g_cache_key_once, create_cache_key);
    pthread_setspecific(g_cache_key, &tc);
    tc.exit_hook = true;
  }
}

}  // namespace guardarena
