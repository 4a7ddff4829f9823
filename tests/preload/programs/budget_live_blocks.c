/* Keeps N blocks of S bytes live at once (argv[1], argv[2]; default 100000
 * of 32), each filled with a byte of its index; sums one byte of each, frees
 * them all and prints the sum, how many allocations failed and the errno of
 * the first failure; then the peak resident set the kernel measured
 * (VmHWM), on a line of its own. A clean program: it must exit 0 with the
 * same first line under any allocator. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static: the program's own bookkeeping stays out of the allocator under
 * test (and out of its failures under on_exhaustion=fail). */
#define MAX_BLOCKS 8000000
static unsigned char* blocks[MAX_BLOCKS];

static long peak_rss_kb(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  }
  fclose(f);
  return kb;
}

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
  if (n > MAX_BLOCKS) n = MAX_BLOCKS;
  long failed = 0;
  int first_errno = 0;
  for (long i = 0; i < n; ++i) {
    errno = 0;
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) {
      if (failed++ == 0) first_errno = errno;
      continue;
    }
    memset(blocks[i], (int)(i & 0xff), size);
  }
  unsigned long long sum = 0;
  for (long i = 0; i < n; ++i) {
    if (blocks[i] != NULL) sum += blocks[i][size - 1];
  }
  for (long i = 0; i < n; ++i) free(blocks[i]);
  printf("blocks %ld sum %llu failed %ld first errno %s\n", n - failed, sum, failed,
         first_errno == ENOMEM ? "ENOMEM"
         : first_errno == 0    ? "none"
                               : "other");
  printf("peak rss %ld kB\n", peak_rss_kb());
  return 0;
}
