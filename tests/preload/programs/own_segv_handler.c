/* A program with its own SIGSEGV handler, installed before guardarena's
 * (from .preinit_array, which runs before any library's constructor): a
 * fault outside guardarena's memory goes to it, without a report. Not a bug
 * program: it must print the same with and without the shim. */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "bug.h"

static void on_segv(int sig) {
  (void)sig;
  static const char msg[] = "own handler ran\n";
  write(1, msg, sizeof msg - 1);
  _exit(3);
}

static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_segv;
  sigaction(SIGSEGV, &sa, NULL);
}

__attribute__((section(".preinit_array"), used)) static void (*const preinit)(void) = install;

int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  reached();
  *(volatile int*)(uintptr_t)0x1234 = 5;
  survived();
  return 0;
}
