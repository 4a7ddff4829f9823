/* guardarena_check_heap() in the middle of a run: reports the block damaged
 * so far (kept live: a free would report it again) and lets the program go
 * on. */
#include <stdio.h>
#include <stdlib.h>

#include "bug.h"

/* Weak: the program also runs without the shim (its "ok" run). */
int guardarena_check_heap(void) __attribute__((weak));

static volatile char* g;

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  g = malloc(40); /* ALLOC */
  reached();
  if (bug) g[-1] = 'A'; /* BUG */
  survived();
  int found = guardarena_check_heap != NULL ? guardarena_check_heap() : 0;
  printf("check found %d\n", found);
  return 0;
}
