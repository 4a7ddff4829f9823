/* Heap overflow past a posix_memalign(64, 192) block. */
#include <stdint.h>
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  void* raw = NULL;
  int rc = posix_memalign(&raw, 64, 192);
  volatile char* p = raw;
  printf("rc %d aligned: %s\n", rc, ((uintptr_t)p % 64) == 0 ? "yes" : "no");
  reached();
  if (bug) {
    p[192] = 'x'; /* BUG */
  } else {
    p[191] = 'x';
  }
  survived();
  free(raw);
  return 0;
}
