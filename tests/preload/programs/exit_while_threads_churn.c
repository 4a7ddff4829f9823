/* Returns from main while two threads still allocate and free blocks of
 * mixed sizes: the exit-time heap check and leak scan run beside them. With
 * "unpausable" as the argument the threads block every signal, so they
 * cannot be paused for the scan, and go on churning under it: the scan must
 * not take a block caught between states (freed, its poison not written
 * yet; freed and reused while it was read) for a damaged one, nor fault on
 * one freed and closed under it. No bug: a clean run prints nothing and
 * exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void* churn(void* arg) {
  (void)arg;
  void* ring[64] = {0};
  for (unsigned long i = 0;; i++) {
    unsigned k = i % 64;
    free(ring[k]);
    ring[k] = malloc(16 + i % 200);
    memset(ring[k], 1, 16);
  }
  return NULL;
}

int main(int argc, char** argv) {
  sigset_t all, before;
  sigfillset(&all);
  if (argc > 1 && strcmp(argv[1], "unpausable") == 0) pthread_sigmask(SIG_BLOCK, &all, &before);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, NULL);
  if (argc > 1) pthread_sigmask(SIG_SETMASK, &before, NULL);
  usleep(20000);
  return 0;
}
