/* A write through a wild pointer into the zero page: outside every arena. */
#include <stdint.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  int local = 0;
  volatile int* p = bug ? (volatile int*)(uintptr_t)0x1234 : &local;
  reached();
  *p = 5; /* BUG */
  survived();
  return 0;
}
