/* Heap overflow of one byte past a 13-byte block. With the default 16-byte
 * alignment the byte lands in the slack before the guard page and is found
 * when the block is freed; with alignment=1 it faults at once. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(13);
  reached();
  if (bug) {
    p[13] = 'x'; /* BUG */
  } else {
    p[12] = 'x';
  }
  survived();
  free((void*)p);
  return 0;
}
