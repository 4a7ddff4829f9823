/* A write into the slack just past a 13-byte block (16 with alignment) that
 * stays live until exit: no guard page there, the canary holds the damage. */
#include <stdlib.h>

#include "bug.h"

static volatile char* g;

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  g = malloc(13); /* ALLOC */
  reached();
  if (bug) {
    g[14] = 'A'; /* BUG */
  } else {
    g[12] = 'A';
  }
  survived();
  return 0;
}
