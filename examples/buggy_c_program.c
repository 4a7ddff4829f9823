/* An ordinary C program with a classic bug, for running under the launcher:
 *
 *   guardarena -- build/examples/buggy_c_program
 *
 * copy_name() allocates strlen(name) bytes and forgets the terminating NUL,
 * so strcpy() writes one byte past the block. With glibc's malloc the byte
 * lands in the chunk's padding and nothing happens; under guardarena the
 * block of a 16-character name ends exactly at a guard page, and the NUL store
 * faults on the spot with a heap-buffer-overflow report naming copy_name().
 * (A length that is not a multiple of 16 leaves alignment slack between the
 * block and the guard page: that overflow is caught too, by the slack
 * canary, when the block is freed.)
 *
 * Nothing here knows about guardarena: no header, no link flag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char* copy_name(const char* name) {
  char* copy = malloc(strlen(name)); /* BUG: no room for the '\0' */
  if (copy != NULL) strcpy(copy, name);
  return copy;
}

int main(void) {
  const char* names[] = {"ada@lovelace.org", "grace@hopper.mil", "alan@turing.org"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
    char* copy = copy_name(names[i]);
    printf("registered %s\n", copy);
    fflush(stdout);
    free(copy);
  }
  return 0;
}
