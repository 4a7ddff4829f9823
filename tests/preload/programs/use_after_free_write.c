/* Use after free: a write to a freed block. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(32);
  free((void*)p);
  volatile char* q = malloc(32);
  reached();
  if (bug) {
    p[5] = 'x'; /* BUG */
  } else {
    q[5] = 'x';
  }
  survived();
  free((void*)q);
  return 0;
}
