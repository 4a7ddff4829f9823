// Mismatch: memory from malloc released with delete[].
#include <cstdlib>

#include "bug.h"

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  char* p = static_cast<char*>(std::malloc(10));
  reached();
  if (bug) {
    delete[] p;  // BUG
  } else {
    std::free(p);
  }
  survived();
  return 0;
}
