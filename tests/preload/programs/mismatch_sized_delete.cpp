// Mismatch: a sized delete whose size is not the allocation's (48 vs 32).
#include <new>

#include "bug.h"

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  void* p = ::operator new(32);
  reached();
  if (bug) {
    ::operator delete(p, 48);  // BUG
  } else {
    ::operator delete(p, 32);
  }
  survived();
  return 0;
}
