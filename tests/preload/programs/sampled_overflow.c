/* Overflows one of many allocations, within what glibc's chunk rounding
 * leaves writable: unguarded (sampled out) it goes unnoticed, guarded it
 * faults. Used to check that sampling catches it within a bounded number of
 * runs. With "ok" it writes inside the block instead. */
#include <stdlib.h>

#include "bug.h"

enum { kBlocks = 200, kVictim = 137, kSize = 64 };

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  volatile char* blocks[kBlocks];
  for (int i = 0; i < kBlocks; ++i) blocks[i] = malloc(kSize);
  long sum = 0;
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i][0] = (char)i;
    if (i == kVictim && bug) {
      blocks[i][kSize] = 'x'; /* BUG */
    } else {
      blocks[i][kSize - 1] = 'x';
    }
    sum += blocks[i][0];
  }
  for (int i = 0; i < kBlocks; ++i) free((void*)blocks[i]);
  printf("sum %ld\n", sum);
  return 0;
}
