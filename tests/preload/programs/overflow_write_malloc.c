/* Heap overflow: a write one byte past a malloc'd block. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(64);
  reached();
  if (bug) {
    p[64] = 'x'; /* BUG */
  } else {
    p[63] = 'x';
  }
  survived();
  free((void*)p);
  return 0;
}
