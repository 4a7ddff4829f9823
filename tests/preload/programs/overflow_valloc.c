/* Heap overflow past a valloc'd block of two pages. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  volatile char* p = valloc(2 * page);
  printf("page aligned: %s\n", ((uintptr_t)p % page) == 0 ? "yes" : "no");
  reached();
  if (bug) {
    p[2 * page] = 'x'; /* BUG */
  } else {
    p[2 * page - 1] = 'x';
  }
  survived();
  free((void*)p);
  return 0;
}
