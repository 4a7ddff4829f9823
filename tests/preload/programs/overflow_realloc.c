/* Heap overflow past a block grown by realloc (16 -> 48 bytes). */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  char* p = malloc(16);
  memcpy(p, "0123456789abcde", 16);
  volatile char* q = realloc(p, 48);
  printf("kept: %s\n", (const char*)q);
  reached();
  if (bug) {
    q[48] = 'x'; /* BUG */
  } else {
    q[47] = 'x';
  }
  survived();
  free((void*)q);
  return 0;
}
