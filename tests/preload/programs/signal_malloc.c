/* malloc/free from a signal handler that interrupts malloc/free (not
   async-signal-safe by POSIX, but common). guardarena defers frees that
   arrive inside its own critical sections and serves such allocations from
   glibc, so this must finish. With "fault" the handler overflows a block:
   the fault inside the handler is still reported. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t handled;
static volatile int fault_in_handler;
/* Blocks allocated by main and freed by the handler, which may interrupt an
   operation of the same size class in the middle. */
static char* pool[4000];
static volatile int pool_n;

static void on_alarm(int sig) {
  (void)sig;
  if (pool_n > 0) free(pool[--pool_n]);
  char* p = malloc(48);
  memset(p, 1, 48);
  if (fault_in_handler) p[48] = 2; /* BUG: overflow inside a signal handler */
  free(p);
  handled++;
}

int main(int argc, char** argv) {
  fault_in_handler = argc > 1 && strcmp(argv[1], "fault") == 0;
  for (int i = 0; i < 4000; ++i) pool[i] = malloc(16 + i % 200);
  pool_n = 4000;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &it, NULL);
  for (int i = 0; i < 200000 && (handled < 300 || i < 20000); ++i) {
    char* p = malloc(16 + i % 200);
    p[0] = (char)i;
    free(p);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  printf("handler ran: %s\n", handled > 0 ? "yes" : "no");
  return 0;
}
