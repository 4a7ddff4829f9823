/* fork() from a forked child, three levels deep, allocating at each level:
   the allocator's fork handlers must leave every child able to fork again
   (a lock released by the child's new thread id once stayed held). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int level(int depth) {
  char* p = malloc(100);
  memset(p, depth, 100);
  free(p);
  if (depth == 0) return 0;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) _exit(level(depth - 1));
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

int main(void) {
  int rc = level(3);
  printf("nested forks: %s\n", rc == 0 ? "ok" : "failed");
  return rc;
}
