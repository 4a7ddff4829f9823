/* Invalid free: a pointer into the middle of a block. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  char* p = malloc(64);
  reached();
  if (bug) {
    free(p + 8); /* BUG */
  } else {
    free(p);
  }
  survived();
  return 0;
}
