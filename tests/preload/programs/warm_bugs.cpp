// One bug, done after a warm-up churn, so that in fast mode the blocks
// involved come from the thread's steady-state path (reused slots, the
// thread cache's free list) rather than from a fresh slot. The first
// argument names the bug; "ok" does everything but the bug.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "bug.h"

namespace {

void* volatile g_sink;

// A ring of live blocks of several small sizes, churned long enough that the
// quarantine is full and every allocation reuses a slot.
void warm_up() {
  void* ring[256] = {};
  for (unsigned i = 0; i < 40000; ++i) {
    unsigned j = i % 256;
    std::free(ring[j]);
    ring[j] = std::malloc(16 + (i * 37) % 1000);
    std::memset(ring[j], 1, 16);
  }
  for (void* p : ring) std::free(p);
}

void churn(unsigned n, std::size_t size) {
  for (unsigned i = 0; i < n; ++i) {
    void* p = std::malloc(size);
    g_sink = p;
    std::free(p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* bug = argc > 1 ? argv[1] : "";
  warm_up();
  if (std::strcmp(bug, "double_free") == 0) {
    void* p = std::malloc(48);
    std::free(p);
    reached();
    std::free(p);  // BUG
  } else if (std::strcmp(bug, "interior_free") == 0) {
    char* p = static_cast<char*>(std::malloc(48));
    reached();
    std::free(p + 8);  // BUG
  } else if (std::strcmp(bug, "free_new") == 0) {
    void* p = ::operator new(48);
    reached();
    std::free(p);  // BUG
  } else if (std::strcmp(bug, "sized_delete") == 0) {
    void* p = ::operator new(48);
    reached();
    ::operator delete(p, 64);  // BUG
  } else if (std::strcmp(bug, "underflow") == 0) {
    auto* p = static_cast<volatile char*>(std::malloc(48));
    p[-1] = 1;  // in the lead canary, not a guard page: found at free
    reached();
    std::free(const_cast<char*>(p));  // BUG
  } else if (std::strcmp(bug, "slack") == 0) {
    auto* p = static_cast<volatile char*>(std::malloc(13));
    p[13] = 1;  // alignment slack after the block: found at free
    reached();
    std::free(const_cast<char*>(p));  // BUG
  } else if (std::strcmp(bug, "write_after_free") == 0) {
    auto* p = static_cast<volatile char*>(std::malloc(48));
    std::free(const_cast<char*>(p));
    p[5] = 1;  // poison, not a fault: found when the slot is reused
    reached();
    churn(100000, 48);  // BUG
  } else if (std::strcmp(bug, "overflow") == 0) {
    auto* p = static_cast<volatile char*>(std::malloc(48));
    reached();
    p[48] = 1;  // BUG
  } else {
    reached();
    churn(1000, 48);
  }
  survived();
  return 0;
}
