/* Invalid free: a pointer malloc never returned (a static array). */
#include <stdlib.h>

#include "bug.h"

static char buffer[64];

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  char* p = malloc(64);
  reached();
  if (bug) {
    free(buffer + 16); /* BUG */
  } else {
    free(p);
  }
  survived();
  return 0;
}
