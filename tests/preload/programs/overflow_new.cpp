// Heap overflow past an object made with plain operator new.
#include <cstdio>

#include "bug.h"

struct Record {
  char name[40];
  long id;
};

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  Record* r = new Record{};
  volatile char* bytes = reinterpret_cast<char*>(r);
  reached();
  if (bug) {
    bytes[sizeof(Record)] = 'x';  // BUG
  } else {
    bytes[sizeof(Record) - 1] = 'x';
  }
  survived();
  delete r;
  return 0;
}
