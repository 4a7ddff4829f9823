/* A read through a pointer to memory that was unmapped: outside every arena. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  long page = sysconf(_SC_PAGESIZE);
  volatile int* p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (bug) munmap((void*)p, (size_t)page);
  reached();
  int v = *p; /* BUG */
  survived();
  printf("%d\n", v);
  return 0;
}
