/* Heap underflow: a write one byte before a block (needs protect_below=1). */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(64);
  reached();
  if (bug) {
    p[-1] = 'x'; /* BUG */
  } else {
    p[0] = 'x';
  }
  survived();
  free((void*)p);
  return 0;
}
