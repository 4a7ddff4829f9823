/* Fast mode: a write to a freed block that is still in quarantine at exit
 * (never reused, so the poison is never checked at reuse). */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* p = malloc(32); /* ALLOC */
  free((void*)p);
  reached();
  if (bug) p[5] = 'x'; /* BUG */
  survived();
  return 0;
}
