/* Re-entrancy: this program exports its own write() (built with -rdynamic),
 * which allocates. The shim's reports and statistics go through write(), so
 * malloc is called from inside the allocator's own paths; that must neither
 * recurse forever nor deadlock. Modes: "overflow" (fault report), "double"
 * (free-time report, made while the allocator is busy), "ok". */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

ssize_t write(int fd, const void* buf, size_t n) {
  char* copy = malloc(n + 1); /* the re-entrant allocation */
  if (copy == NULL) return -1;
  memcpy(copy, buf, n);
  ssize_t r = syscall(SYS_write, fd, copy, n);
  free(copy);
  return r;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "ok";
  volatile char* p = malloc(64);
  if (strcmp(mode, "overflow") == 0) p[64] = 'x';
  free((void*)p);
  if (strcmp(mode, "double") == 0) free((void*)p);
  write(1, "done\n", 5);
  return 0;
}
