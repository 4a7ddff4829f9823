/* fork() from a multi-threaded program while other threads allocate: each
 * child must be able to allocate and free (no allocator lock left held), then
 * posix_spawn and exec work. Exits 0 and prints a summary when all is well;
 * a deadlocked child is killed by its alarm and counted as a failure. */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

static atomic_int stop;

static void* churn(void* arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  void* keep[64] = {0};
  while (!atomic_load(&stop)) {
    unsigned k = (seed = seed * 1103515245u + 12345u) % 64;
    free(keep[k]);
    keep[k] = malloc(1 + (seed >> 8) % 5000);
    if (keep[k] != NULL) memset(keep[k], 1, 1);
  }
  for (int i = 0; i < 64; ++i) free(keep[i]);
  return NULL;
}

static int child_work(void) {
  alarm(20);
  void* p[100];
  for (int i = 0; i < 100; ++i) {
    p[i] = malloc((size_t)(i * 37 + 1));
    if (p[i] == NULL) return 1;
    memset(p[i], 2, (size_t)(i * 37 + 1));
  }
  for (int i = 0; i < 100; ++i) free(p[i]);
  char* s = strdup("child");
  int ok = s != NULL && strcmp(s, "child") == 0;
  free(s);
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "exec") == 0) return child_work();
  pthread_t t[3];
  for (uintptr_t i = 0; i < 3; ++i) pthread_create(&t[i], NULL, churn, (void*)(i + 1));
  int good = 0;
  const int forks = 40;
  for (int i = 0; i < forks; ++i) {
    pid_t pid = fork();
    if (pid == 0) _exit(child_work());
    int status = 0;
    waitpid(pid, &status, 0);
    good += WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; ++i) pthread_join(t[i], NULL);
  printf("forked children ok: %d/%d\n", good, forks);

  pid_t pid = 0;
  char* spawn_argv[] = {argv[0], "exec", NULL};
  int rc = posix_spawn(&pid, argv[0], NULL, NULL, spawn_argv, environ);
  int status = 0;
  if (rc == 0) waitpid(pid, &status, 0);
  int spawned = rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  printf("posix_spawn ok: %d\n", spawned);

  pid = fork();
  if (pid == 0) {
    execv(argv[0], spawn_argv);
    _exit(127);
  }
  waitpid(pid, &status, 0);
  int execed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  printf("exec ok: %d\n", execed);
  return good == forks && spawned && execed ? 0 : 1;
}
