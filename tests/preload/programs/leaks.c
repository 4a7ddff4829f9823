/* Three direct leaks from make_leak, a leaked 4-node list (1 direct + 3
   indirect), and a block kept in a global (reachable, not a leak). With "ok"
   as the argument nothing leaks. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
struct node { struct node* next; char pad[40]; };
static void* kept;
__attribute__((noinline)) void* make_leak(size_t n) { return malloc(n); }
__attribute__((noinline)) struct node* make_list(int n) {
  struct node* head = 0;
  for (int i = 0; i < n; ++i) { struct node* x = malloc(sizeof *x); x->next = head; head = x; }
  return head;
}
static void close_stderr(void) { close(2); }  /* as coreutils' close_stdout does */

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "close-stderr") == 0) atexit(close_stderr);
  kept = malloc(100);
  if (argc > 1 && strcmp(argv[1], "ok") == 0) { printf("done\n"); return 0; }              /* reachable from a global: not a leak */
  for (int i = 0; i < 3; ++i) { char* p = make_leak(64); p[0] = 1; }  /* 3 direct leaks */
  struct node* l = make_list(4);   /* 1 direct + 3 indirect after we drop it */
  l = 0;
  char* local = malloc(10); free(local);
  printf("done\n");
  return 0;
}
