/* malloc and free called from one function thousands of times, so that their
 * stacks come from the per-thread memo (their entry frames sit at the same
 * address), then a write to a block freed in the last round. The report must
 * give the allocation and the free each its own line. In fast mode the write
 * does not fault: the second churn reuses the slot, whose poison check
 * reports it. */
#include <stdlib.h>

#include "bug.h"

static char* volatile g_last;

__attribute__((noinline)) static void churn(int rounds) {
  for (int i = 0; i < rounds; ++i) {
    char* p = malloc(40); /* ALLOC SITE */
    p[0] = 1;
    free(p); /* FREE SITE */
    g_last = p;
  }
}

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  churn(5000);
  volatile char* p = g_last;
  reached();
  if (bug) p[3] = 'x'; /* BUG */
  churn(20000);
  survived();
  return 0;
}
