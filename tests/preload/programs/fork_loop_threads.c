/* Hundreds of fork()s while other threads allocate and use stdio (the glibc
   BZ #19431 class: allocator locks against stdio locks in atfork handlers).
   Each child allocates, prints and exits; parent and children keep working. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void* churn(void* arg) {
  (void)arg;
  unsigned n = 0;
  while (!stop) {
    char* p = malloc(32 + n % 500);
    memset(p, 7, 32);
    if (++n % 5000 == 0) fprintf(stderr, "%s", "");
    free(p);
  }
  return NULL;
}

int main(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; ++i) pthread_create(&t[i], NULL, churn, NULL);
  int ok = 0;
  for (int i = 0; i < 300; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      char* p = malloc(100);
      snprintf(p, 100, "child %d", i);
      FILE* devnull = fopen("/dev/null", "w");
      if (devnull) { fprintf(devnull, "%s\n", p); fclose(devnull); }
      free(p);
      _exit(0);
    }
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
  }
  stop = 1;
  for (int i = 0; i < 3; ++i) pthread_join(t[i], NULL);
  printf("forks: %d ok\n", ok);
  return ok == 300 ? 0 : 1;
}
