/* Shared by the one-bug-per-file programs run under the shim by
 * tests/preload/bug_test.cpp. Each program does its bug unless its first
 * argument is "ok", in which case it does the correct thing instead and must
 * print exactly what it prints without the shim. The statement with the bug
 * carries the marker BUG in a comment: the test checks that a symbolized
 * report points at that line. Built with -O0 so the bug is not optimised
 * away; accesses go through volatile pointers for the same reason. */
#ifndef GUARDARENA_TESTS_PRELOAD_BUG_H
#define GUARDARENA_TESTS_PRELOAD_BUG_H

#include <stdio.h>
#include <string.h>

static inline int bug_wanted(int argc, char** argv) {
  return !(argc > 1 && strcmp(argv[1], "ok") == 0);
}

/* Printed (and flushed) right before the buggy statement... */
static inline void reached(void) {
  printf("reached the statement\n");
  fflush(stdout);
}
/* ...and right after it: a bug that is caught at the statement never gets here. */
static inline void survived(void) {
  printf("after the statement\n");
  fflush(stdout);
}

#endif
