/* Heap overflow in a forked child. The parent exits with 100 + the child's
 * death signal (0 if it exited normally), so the test sees both. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bug.h"

int main(int argc, char** argv) {
  int bug = bug_wanted(argc, argv);
  char* before = malloc(100);
  pid_t pid = fork();
  if (pid == 0) {
    volatile char* p = malloc(64);
    reached();
    if (bug) {
      p[64] = 'x'; /* BUG */
    } else {
      p[63] = 'x';
    }
    survived();
    free((void*)p);
    free(before);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  free(before);
  printf("child done\n");
  return WIFSIGNALED(status) ? 100 + WTERMSIG(status) : WEXITSTATUS(status);
}
