/* guardarena_check_heap() in a loop while two threads allocate, write and
 * free blocks of mixed sizes: the check walks every live block's canaries,
 * and a block another thread frees under it (full mode then closes its
 * pages) must neither fault the check nor count as damaged. No bug: prints
 * "found 0" and exits 0. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weak: resolved from the preloaded shim. */
int guardarena_check_heap(void) __attribute__((weak));

static volatile int stop;

static void* churn(void* arg) {
  void* ring[256] = {0};
  unsigned s = (unsigned)(unsigned long)arg;
  while (!stop) {
    s = s * 1103515245u + 12345u;
    unsigned k = (s >> 8) % 256;
    free(ring[k]);
    size_t n = 16 + (s >> 16) % 200;
    ring[k] = malloc(n);
    memset(ring[k], 1, n);
  }
  for (int k = 0; k < 256; k++) free(ring[k]);
  return NULL;
}

int main(void) {
  if (guardarena_check_heap == NULL) {
    fprintf(stderr, "run under the guardarena shim\n");
    return 2;
  }
  pthread_t t[2];
  for (unsigned long i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, (void*)(i + 1));
  int found = 0;
  for (int round = 0; round < 1000; round++) found += guardarena_check_heap();
  stop = 1;
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  printf("found %d\n", found);
  return found != 0;
}
