/* Use after realloc: a write through the pointer realloc made stale. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(64);
  p[0] = 'a';
  volatile char* q = realloc((void*)p, 128);
  reached();
  if (bug) {
    p[0] = 'b'; /* BUG */
  } else {
    q[0] = 'b';
  }
  survived();
  printf("first byte %c\n", q[0]);
  free((void*)q);
  return 0;
}
