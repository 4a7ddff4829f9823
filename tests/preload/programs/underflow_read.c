/* Heap underflow: a read one byte before a block (needs protect_below=1). */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(64);
  memset((void*)p, 'a', 64);
  reached();
  char c = 0;
  if (bug) {
    c = p[-1]; /* BUG */
  } else {
    c = p[0];
  }
  survived();
  printf("read %c\n", c);
  free((void*)p);
  return 0;
}
