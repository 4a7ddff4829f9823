// Cases of the unit tests that need a process of their own, so they cannot
// run inside the test binary: the fault handler's (a process in which no
// guardarena handler was installed yet: installation is once per process)
// and the backend choice on a simulated older kernel (the library probes the
// kernel once per process). argv[1] names the case.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <stdexcept>

#include "guardarena/guardarena.hpp"
#include "support/old_kernel.h"

namespace {

[[gnu::noinline, gnu::optimize("O0")]] void poke(void* p, std::ptrdiff_t at) {
  static_cast<volatile char*>(p)[at] = 7;
}

void own_handler(int) {
  static const char msg[] = "own handler ran\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(42);
}

void handle_segv_zero() {
  guardarena::guarded_resource res{"handle_segv=0"};
  void* p = res.allocate(64, 16);
  poke(p, 64);
}

void own_handler_then_foreign_fault() {
  signal(SIGSEGV, own_handler);  // installed before guardarena's
  guardarena::guarded_resource res;
  (void)res.allocate(64, 16);
  void* not_ours = mmap(nullptr, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  poke(not_ours, 0);
}

void own_handler_then_guard_fault() {
  signal(SIGSEGV, own_handler);
  guardarena::guarded_resource res;
  void* p = res.allocate(64, 16);
  poke(p, 64);
}

// backend=guard where the kernel has no guard markers: the resource must
// refuse to exist (std::runtime_error, as guardarena.hpp says) rather than
// run unguarded; backend=auto
// must choose mprotect. Prints what happened; exit 0 unless the simulation
// itself failed.
int without_guard_markers(const char* options) {
  std::string why_not;
  if (!guardarena::testing::hide_guard_markers(&why_not)) {
    std::fprintf(stderr, "%s\n", why_not.c_str());
    return 4;
  }
  try {
    guardarena::guarded_resource res{options};
    void* p = res.allocate(64, 16);
    res.deallocate(p, 64, 16);
    std::printf("constructed: backend %s\n", res.stats().backend);
  } catch (const std::runtime_error& e) {
    std::printf("std::runtime_error: %s\n", e.what());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* name = argc > 1 ? argv[1] : "";
  if (std::strcmp(name, "HandleSegvZero") == 0) {
    handle_segv_zero();
  } else if (std::strcmp(name, "OwnHandlerThenForeignFault") == 0) {
    own_handler_then_foreign_fault();
  } else if (std::strcmp(name, "OwnHandlerThenGuardFault") == 0) {
    own_handler_then_guard_fault();
  } else if (std::strcmp(name, "GuardBackendWithoutGuardMarkers") == 0) {
    return without_guard_markers("backend=guard");
  } else if (std::strcmp(name, "AutoBackendWithoutGuardMarkers") == 0) {
    return without_guard_markers("backend=auto");
  } else {
    std::fprintf(stderr, "fresh_process_child: unknown case '%s'\n", name);
    return 2;
  }
  std::fprintf(stderr, "fresh_process_child: %s did not fault\n", name);
  return 3;
}
