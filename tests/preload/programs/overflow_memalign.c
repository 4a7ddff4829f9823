/* Heap overflow past a memalign(64, 128) block. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = memalign(64, 128);
  printf("aligned: %s\n", ((uintptr_t)p % 64) == 0 ? "yes" : "no");
  reached();
  if (bug) {
    p[128] = 'x'; /* BUG */
  } else {
    p[127] = 'x';
  }
  survived();
  free((void*)p);
  return 0;
}
