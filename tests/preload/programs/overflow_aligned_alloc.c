/* Heap overflow past an aligned_alloc(32, 96) block. */
#include <stdint.h>
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = aligned_alloc(32, 96);
  printf("aligned: %s\n", ((uintptr_t)p % 32) == 0 ? "yes" : "no");
  reached();
  if (bug) {
    p[96] = 'x'; /* BUG */
  } else {
    p[95] = 'x';
  }
  survived();
  free((void*)p);
  return 0;
}
