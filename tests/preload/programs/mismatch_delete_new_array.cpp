// Mismatch: memory from operator new[] released with delete (not delete[]).
#include "bug.h"

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  char* p = new char[10];
  reached();
  if (bug) {
    delete p;  // BUG
  } else {
    delete[] p;
  }
  survived();
  return 0;
}
