// Use after delete: a read from a deleted object.
#include <cstdio>

#include "bug.h"

struct Node {
  int value;
  Node* next;
};

int main(int argc, char** argv) {
  bool bug = bug_wanted(argc, argv);
  Node* n = new Node{42, nullptr};
  volatile Node* v = n;
  int value = 0;
  if (!bug) value = v->value;
  delete n;
  reached();
  if (bug) value = v->value;  // BUG
  survived();
  std::printf("value %d\n", value);
  return 0;
}
