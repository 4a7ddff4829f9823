/* Keeps N blocks live (argv[1], default 2000), then frees them; prints how
 * many allocations failed and the errno of the first failure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  /* Static: with on_exhaustion=fail even this program's own bookkeeping
   * could not be allocated. */
  static char* blocks[100000];
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  if (n > 100000) n = 100000;
  int failed = 0, first_errno = 0;
  for (int i = 0; i < n; ++i) {
    errno = 0;
    blocks[i] = malloc(100);
    if (blocks[i] == NULL) {
      if (failed++ == 0) first_errno = errno;
      continue;
    }
    memset(blocks[i], 1, 100);
  }
  for (int i = 0; i < n; ++i) free(blocks[i]);
  printf("allocated %d failed %d first errno %s\n", n - failed, failed,
         first_errno == ENOMEM ? "ENOMEM"
         : first_errno == 0    ? "none"
                               : "other");
  return 0;
}
