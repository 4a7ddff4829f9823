/* Returns from main while two threads still allocate and free blocks of
 * mixed sizes: the exit-time heap check runs beside them and must not take
 * a block caught between states (freed, its poison not written yet; freed
 * and reused while it was read) for a damaged one. No bug: a clean run
 * prints nothing and exits 0. */
#include <pthread.h>
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

int main(void) {
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, NULL);
  usleep(20000);
  return 0;
}
