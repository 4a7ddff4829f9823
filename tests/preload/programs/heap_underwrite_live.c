/* A write 4 bytes before a block that stays live until exit: only the heap
 * check at exit can see the damaged canary. */
#include <stdlib.h>

#include "bug.h"

static volatile char* g;

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  g = malloc(100); /* ALLOC */
  reached();
  if (bug) {
    g[-4] = 'A'; /* BUG */
  } else {
    g[0] = 'A';
  }
  survived();
  return 0;
}
