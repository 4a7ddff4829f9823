/* Every entry point of the shim's sampled-out fast path, mixed on four
 * threads that hand blocks to each other through a mailbox: malloc, calloc,
 * realloc, reallocarray, free, the operator new/delete forms (plain, array,
 * nothrow, sized, aligned), posix_memalign. Checks contents across realloc
 * and thread hand-over, calloc's zeroes and that free keeps errno; prints a
 * summary that does not depend on the interleaving. Arguments:
 *   ok        the mix only (prints what it prints without the shim)
 *   stats     the mix, then malloc_stats() (the test reads its fallback counts)
 *   malloc | calloc | realloc | new | new[]
 *             the mix, then a new thread overflows 64-byte blocks from that
 *             function by one byte, which glibc's chunk absorbs: only a
 *             guarded block faults, so under sampling it dies within about
 *             2 * sample_rate blocks. Exits 3 if none faulted. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <new>

namespace {

enum Kind {
  kMalloc,
  kCalloc,
  kRealloc,
  kReallocarray,
  kPosixMemalign,
  kNew,
  kNewArray,
  kNewNothrow,
  kNewArrayNothrow,
  kNewAligned,
  kKinds
};

struct Held {
  unsigned char* p;
  size_t size;
  Kind kind;
  unsigned char seed;
};

constexpr int kThreads = 4;
constexpr int kIterations = 20000;
constexpr int kLocal = 32;
constexpr int kMailboxes = 16;

std::atomic<Held*> g_mailbox[kMailboxes];
std::atomic<long> g_failures{0};

struct Rng {
  unsigned long long s;
  unsigned next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<unsigned>(s >> 33);
  }
};

size_t pick_size(Rng& r) {
  unsigned x = r.next() % 64;
  if (x == 0) return 150000 + r.next() % 100000;  // glibc mmaps these
  if (x < 8) return 1 + r.next() % 8192;
  return 1 + r.next() % 256;
}

void fail(const char* what, size_t size) {
  g_failures.fetch_add(1);
  printf("FAILED: %s (size %zu)\n", what, size);
}

void fill(Held& h, size_t from) {
  for (size_t i = from; i < h.size; ++i) h.p[i] = static_cast<unsigned char>(h.seed + i);
}

void check(const Held& h, size_t up_to, const char* what) {
  for (size_t i = 0; i < up_to; ++i) {
    if (h.p[i] != static_cast<unsigned char>(h.seed + i)) {
      fail(what, h.size);
      return;
    }
  }
}

Held* make(Rng& r) {
  Held* h = new Held{};
  h->kind = static_cast<Kind>(r.next() % kKinds);
  h->size = pick_size(r);
  h->seed = static_cast<unsigned char>(r.next());
  size_t n = h->size;
  switch (h->kind) {
    case kMalloc:
      h->p = static_cast<unsigned char*>(malloc(n));
      break;
    case kCalloc:
      h->p = static_cast<unsigned char*>(calloc(n, 1));
      for (size_t i = 0; i < n; ++i) {
        if (h->p[i] != 0) {
          fail("calloc returned a block that is not zeroed", n);
          break;
        }
      }
      break;
    case kRealloc:
    case kReallocarray: {
      // Start from a block of another size, filled; the prefix must survive.
      Held old = *h;
      old.size = pick_size(r);
      old.p = static_cast<unsigned char*>(r.next() % 4 == 0 ? nullptr : malloc(old.size));
      if (old.p != nullptr) fill(old, 0);
      h->p = static_cast<unsigned char*>(h->kind == kRealloc ? realloc(old.p, n)
                                                             : reallocarray(old.p, n, 1));
      if (old.p != nullptr) check(*h, old.size < n ? old.size : n, "realloc lost contents");
      break;
    }
    case kPosixMemalign: {
      void* p = nullptr;
      if (posix_memalign(&p, 64, n) != 0 || reinterpret_cast<uintptr_t>(p) % 64 != 0) {
        fail("posix_memalign", n);
      }
      h->p = static_cast<unsigned char*>(p);
      break;
    }
    case kNew:
      h->p = static_cast<unsigned char*>(::operator new(n));
      break;
    case kNewArray:
      h->p = static_cast<unsigned char*>(::operator new[](n));
      break;
    case kNewNothrow:
      h->p = static_cast<unsigned char*>(::operator new(n, std::nothrow));
      break;
    case kNewArrayNothrow:
      h->p = static_cast<unsigned char*>(::operator new[](n, std::nothrow));
      break;
    case kNewAligned:
      h->p = static_cast<unsigned char*>(::operator new (n, std::align_val_t{32}));
      break;
    case kKinds:
      break;
  }
  if (h->p == nullptr) {
    fail("allocation returned NULL", n);
    delete h;
    return nullptr;
  }
  fill(*h, 0);
  return h;
}

void destroy(Held* h, Rng& r) {
  if (h == nullptr) return;
  check(*h, h->size, "contents changed while the block was live");
  bool sized = r.next() % 2 == 0;
  int saved = 4000 + static_cast<int>(r.next() % 1000);
  errno = saved;
  switch (h->kind) {
    case kMalloc:
    case kCalloc:
    case kRealloc:
    case kReallocarray:
    case kPosixMemalign:
      free(h->p);
      break;
    case kNew:
      if (sized) {
        ::operator delete(h->p, h->size);
      } else {
        ::operator delete(h->p);
      }
      break;
    case kNewArray:
      if (sized) {
        ::operator delete[](h->p, h->size);
      } else {
        ::operator delete[](h->p);
      }
      break;
    case kNewNothrow:
      ::operator delete(h->p, std::nothrow);
      break;
    case kNewArrayNothrow:
      ::operator delete[](h->p, std::nothrow);
      break;
    case kNewAligned:
      if (sized) {
        ::operator delete (h->p, h->size, std::align_val_t{32});
      } else {
        ::operator delete (h->p, std::align_val_t{32});
      }
      break;
    case kKinds:
      break;
  }
  if (errno != saved) fail("free changed errno", h->size);
  delete h;
}

void* worker(void* arg) {
  Rng r{0x9e3779b97f4a7c15ull * (reinterpret_cast<uintptr_t>(arg) + 1)};
  Held* local[kLocal] = {};
  for (int i = 0; i < kIterations; ++i) {
    int k = static_cast<int>(r.next() % kLocal);
    destroy(local[k], r);
    local[k] = make(r);
    if (r.next() % 4 == 0) {
      // Hand a block to whichever thread empties this mailbox next; free
      // what another thread left there.
      int m = static_cast<int>(r.next() % kMailboxes);
      destroy(g_mailbox[m].exchange(local[k]), r);
      local[k] = nullptr;
    }
  }
  for (Held*& h : local) destroy(h, r);
  return nullptr;
}

char* overflow_block(const char* how) {
  if (strcmp(how, "malloc") == 0) return static_cast<char*>(malloc(64));
  if (strcmp(how, "calloc") == 0) return static_cast<char*>(calloc(8, 8));
  if (strcmp(how, "realloc") == 0) return static_cast<char*>(realloc(malloc(8), 64));
  if (strcmp(how, "new") == 0) return static_cast<char*>(::operator new(64));
  if (strcmp(how, "new[]") == 0) return new char[64];
  return nullptr;
}

void release_block(const char* how, char* p) {
  if (strcmp(how, "new") == 0) {
    ::operator delete(p);
  } else if (strcmp(how, "new[]") == 0) {
    delete[] p;
  } else {
    free(p);
  }
}

void* overflower(void* arg) {
  const char* how = static_cast<const char*>(arg);
  for (int i = 0; i < 1000000; ++i) {
    volatile char* p = overflow_block(how);
    p[64] = 'x'; /* BUG: inside glibc's chunk, on the guard page of a guarded block */
    release_block(how, const_cast<char*>(p));
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const char* arg = argc > 1 ? argv[1] : "ok";
  pthread_t threads[kThreads];
  for (int t = 0; t < kThreads; ++t) {
    pthread_create(&threads[t], nullptr, worker,
                   reinterpret_cast<void*>(static_cast<uintptr_t>(t)));
  }
  for (pthread_t t : threads) pthread_join(t, nullptr);
  Rng r{42};
  for (std::atomic<Held*>& m : g_mailbox) destroy(m.exchange(nullptr), r);
  printf("mix: %d threads x %d operations, %ld failures\n", kThreads, kIterations,
         g_failures.load());
  fflush(stdout);
  if (strcmp(arg, "stats") == 0) malloc_stats();
  if (strcmp(arg, "ok") == 0 || strcmp(arg, "stats") == 0) return g_failures.load() == 0 ? 0 : 1;
  bool known = false;
  for (const char* how : {"malloc", "calloc", "realloc", "new", "new[]"})
    known |= strcmp(arg, how) == 0;
  if (!known) {
    printf("unknown argument %s\n", arg);
    return 2;
  }
  pthread_t t;
  pthread_create(&t, nullptr, overflower, const_cast<char*>(arg));
  pthread_join(t, nullptr);
  printf("overflow not caught\n");
  return 3;
}
