/* A thread sleeps holding the only reference to a block, and ends as soon
 * as its sleep is interrupted, dropping the reference on the way (as a
 * CPython daemon thread ends when it wakes to find the interpreter
 * finalizing). main returns while it sleeps: at exit the block is
 * reachable, and stays so for the leak scan, however many times guardarena
 * pauses the threads at exit. No bug: exits 0. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile int sleeping;

static void* sleeper(void* arg) {
  (void)arg;
  char* volatile mine = malloc(20000);
  memset(mine, 5, 20000);
  sleeping = 1;
  struct timespec ts = {100, 0};
  while (nanosleep(&ts, &ts) != 0 && errno != EINTR) {
  }
  mine = NULL;
  pthread_exit(NULL);
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, sleeper, NULL);
  while (!sleeping) sched_yield();
  return 0;
}
