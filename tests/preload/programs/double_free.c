/* Double free. */
#include <stdlib.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  char* p = malloc(64);
  free(p);
  reached();
  if (bug) free(p); /* BUG */
  survived();
  return 0;
}
