/* Use after free: a read from a freed block. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(32);
  p[0] = 'a';
  char c = 0;
  if (!bug) c = p[0];
  free((void*)p);
  reached();
  if (bug) c = p[0]; /* BUG */
  survived();
  printf("read %c\n", c);
  return 0;
}
