/* A read through a null struct pointer: a fault in the zero page. */
#include <stdio.h>

#include "bug.h"

struct node {
  int value;
  struct node* next;
};

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  struct node tail = {2, NULL};
  struct node head = {1, &tail};
  volatile struct node* n = bug ? tail.next : head.next;
  reached();
  int v = n->value; /* BUG */
  survived();
  printf("%d\n", v);
  return 0;
}
