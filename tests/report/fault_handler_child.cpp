// Child programs for fault_handler_test.cpp: cases that need a process in
// which no guardarena handler was installed yet (installation is once per
// process), so they cannot run inside the test binary. argv[1] names the
// case; each ends in a fault and never returns normally.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "guardarena/guardarena.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  const char* name = argc > 1 ? argv[1] : "";
  if (std::strcmp(name, "HandleSegvZero") == 0) {
    handle_segv_zero();
  } else if (std::strcmp(name, "OwnHandlerThenForeignFault") == 0) {
    own_handler_then_foreign_fault();
  } else if (std::strcmp(name, "OwnHandlerThenGuardFault") == 0) {
    own_handler_then_guard_fault();
  } else {
    std::fprintf(stderr, "fault_handler_child: unknown case '%s'\n", name);
    return 2;
  }
  std::fprintf(stderr, "fault_handler_child: %s did not fault\n", name);
  return 3;
}
