/* malloc_usable_size on every kind of block: at least the requested size
 * (exactly it with the argument "exact", for guarded blocks), and the
 * contents survive realloc up to it. Under sampling half the blocks are
 * glibc's, whose usable size the shim asks glibc for. Exits with the number
 * of failures. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  int exact = argc > 1 && strcmp(argv[1], "exact") == 0;
  int failures = 0;
  for (size_t n = 1; n <= 600; ++n) {
    unsigned char* p = malloc(n);
    size_t u = malloc_usable_size(p);
    if (u < n || (exact && u != n)) {
      printf("malloc(%zu): usable %zu\n", n, u);
      ++failures;
    }
    memset(p, (int)(n & 0xff), u); /* the whole usable size may be used */
    p = realloc(p, 2 * n);
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != (unsigned char)(n & 0xff)) {
        printf("realloc(%zu) lost byte %zu\n", n, i);
        ++failures;
        break;
      }
    }
    free(p);
  }
  printf("usable size: %d failures\n", failures);
  return failures;
}
