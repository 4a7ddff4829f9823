/* Heap overflow: a read one byte past a malloc'd block. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(64);
  memset((void*)p, 'a', 64);
  reached();
  char c = 0;
  if (bug) {
    c = p[64]; /* BUG */
  } else {
    c = p[63];
  }
  survived();
  printf("read %c\n", c);
  free((void*)p);
  return 0;
}
