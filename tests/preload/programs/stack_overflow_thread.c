/* Recursion without end in a second thread. */
#include <pthread.h>
#include <stdio.h>

#include "bug.h"

static int bug;

/* One line: whichever instruction of a frame touches the page past the stack
 * (the call, the prologue, the frame's store), the report names this line. */
/* clang-format off */
static int depth(volatile char* prev, int n) { volatile char frame[256]; frame[0] = (char)n; return n == 0 ? prev[0] : depth(frame, n - 1) + frame[0]; } /* BUG */
/* clang-format on */

static void* worker(void* arg) {
  (void)arg;
  char first = 0;
  reached();
  int v = depth(&first, bug ? 1 << 30 : 100);
  survived();
  printf("%d\n", v);
  return NULL;
}

int main(int argc, char** argv) {
  bug = bug_wanted(argc, argv);
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_join(t, NULL);
  printf("joined\n");
  return 0;
}
