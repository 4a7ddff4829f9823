// Mismatch: memory from operator new released with free().
#include <cstdlib>

#include "bug.h"

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  int* p = new int(7);
  reached();
  if (bug) {
    std::free(p);  // BUG
  } else {
    delete p;
  }
  survived();
  return 0;
}
