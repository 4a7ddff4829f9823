// Heap overflow past an array made with operator new[] (16 ints).
#include <cstdio>

#include "bug.h"

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  volatile int* a = new int[16]();
  reached();
  if (bug) {
    a[16] = 1;  // BUG
  } else {
    a[15] = 1;
  }
  survived();
  delete[] a;
  return 0;
}
