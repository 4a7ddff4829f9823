/* A shared library whose constructor allocates before main, and before the
 * shim's own constructor has run; bootstrap_free.c frees the blocks later. */
#include <stdlib.h>
#include <string.h>

char* ctor_block;
char* ctor_string;
int* ctor_zeroed;

__attribute__((constructor)) static void allocate_early(void) {
  ctor_block = malloc(100);
  memset(ctor_block, 'c', 99);
  ctor_block[99] = '\0';
  ctor_string = strdup("made in a constructor");
  ctor_zeroed = calloc(16, sizeof(int));
}
