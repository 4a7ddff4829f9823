/* Heap overflow past a calloc'd array of 10 longs (80 bytes). */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile long* p = calloc(10, sizeof(long));
  long sum = 0;
  for (int i = 0; i < 10; ++i) sum += p[i];
  printf("calloc zeroed: %s\n", sum == 0 ? "yes" : "no");
  reached();
  if (bug) {
    p[10] = 1; /* BUG */
  } else {
    p[9] = 1;
  }
  survived();
  free((void*)p);
  return 0;
}
