/* posix_spawn, vfork+exec and system() from a program under the shim. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

int main(void) {
  int ok = 0;
  pid_t pid;
  char* argv[] = {"/bin/sh", "-c", "exit 0", NULL};
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0) {
    int st;
    waitpid(pid, &st, 0);
    ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  pid = vfork();
  if (pid == 0) {
    execve("/bin/sh", argv, environ);
    _exit(127);
  }
  if (pid > 0) {
    int st;
    waitpid(pid, &st, 0);
    ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  ok += system("exit 0") == 0;
  printf("spawned: %d of 3\n", ok);
  return ok == 3 ? 0 : 1;
}
