/* Recursion without end on the main thread. */
#include <stdio.h>

#include "bug.h"

/* One line: whichever instruction of a frame touches the page past the stack
 * (the call, the prologue, the frame's store), the report names this line. */
/* clang-format off */
static int depth(volatile char* prev, int n) { volatile char frame[256]; frame[0] = (char)n; return n == 0 ? prev[0] : depth(frame, n - 1) + frame[0]; } /* BUG */
/* clang-format on */

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  char first = 0;
  reached();
  int v = depth(&first, bug ? 1 << 30 : 100);
  survived();
  printf("%d\n", v);
  return 0;
}
