/* Heap overflow inside libc: strcpy writes the NUL one byte past a block
   sized by strlen. The fault is in libc's strcpy; the bug is in the caller. */
#include <stdlib.h>
#include <string.h>

#include "bug.h"

__attribute__((noinline)) static char* copy(const char* s, int bug) {
  char* p = malloc(strlen(s) + (bug ? 0 : 1));
  reached();
  strcpy(p, s); /* BUG */
  return p;
}

int main(int argc, char** argv) {
  char* p = copy("0123456789abcdef", bug_wanted(argc, argv));
  survived();
  free(p);
  return 0;
}
