/* Heap overflow in a second thread. */
#include <pthread.h>
#include <stdlib.h>

#include "bug.h"

static int bug;

static void* worker(void* arg) {
  (void)arg;
  volatile char* p = malloc(64);
  reached();
  if (bug) {
    p[64] = 'x'; /* BUG */
  } else {
    p[63] = 'x';
  }
  survived();
  free((void*)p);
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
