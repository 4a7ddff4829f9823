/* A correct C program that uses every malloc entry point, glibc functions
 * that allocate, and threads. Its output depends only on its input, so it
 * must be the same with and without the shim, in any mode. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t next(uint64_t* s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return *s >> 33;
}

static int cmp_int(const void* a, const void* b) {
  int x = *(const int*)a, y = *(const int*)b;
  return (x > y) - (x < y);
}

static uint64_t churn(uint64_t seed, int rounds) {
  enum { kSlots = 257 };
  char* slot[kSlots] = {0};
  size_t len[kSlots] = {0};
  uint64_t sum = 0;
  for (int i = 0; i < rounds; ++i) {
    int k = (int)(next(&seed) % kSlots);
    size_t n = 1 + next(&seed) % (next(&seed) % 8 == 0 ? 20000 : 300);
    size_t keep = 0; /* bytes whose contents carry over */
    switch (next(&seed) % 6) {
      case 0:
        free(slot[k]);
        slot[k] = malloc(n);
        break;
      case 1:
        free(slot[k]);
        slot[k] = calloc(n, 1);
        keep = n;
        break;
      case 2:
        slot[k] = realloc(slot[k], n);
        keep = len[k] < n ? len[k] : n;
        break;
      case 3: {
        void* p = NULL;
        free(slot[k]);
        posix_memalign(&p, 64, n);
        slot[k] = p;
        break;
      }
      case 4:
        free(slot[k]);
        slot[k] = aligned_alloc(32, n);
        break;
      default:
        free(slot[k]);
        slot[k] = memalign(128, n);
        break;
    }
    if (slot[k] == NULL) return 0;
    /* Only defined bytes are read: the rest is filled first. */
    memset(slot[k] + keep, (int)(k & 0x7f), n - keep);
    slot[k][n / 2] = (char)(i & 0x7f); /* carried over by later reallocs */
    len[k] = n;
    for (size_t j = 0; j < len[k]; j += 61) sum += (unsigned char)slot[k][j];
  }
  for (int k = 0; k < kSlots; ++k) free(slot[k]);
  return sum;
}

static void* thread_main(void* arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  uint64_t* out = malloc(sizeof *out);
  *out = churn(seed, 3000);
  return out;
}

int main(void) {
  printf("churn %llu\n", (unsigned long long)churn(1, 20000));

  pthread_t t[4];
  for (uintptr_t i = 0; i < 4; ++i) pthread_create(&t[i], NULL, thread_main, (void*)(i + 7));
  for (int i = 0; i < 4; ++i) {
    void* r = NULL;
    pthread_join(t[i], &r);
    printf("thread %d %llu\n", i, (unsigned long long)*(uint64_t*)r);
    free(r);
  }

  int* nums = reallocarray(NULL, 1000, sizeof(int));
  uint64_t s = 5;
  for (int i = 0; i < 1000; ++i) nums[i] = (int)(next(&s) % 100000);
  qsort(nums, 1000, sizeof(int), cmp_int);
  printf("sorted %d %d %d\n", nums[0], nums[500], nums[999]);
  free(nums);

  char* text = NULL;
  size_t text_len = 0;
  FILE* mem = open_memstream(&text, &text_len);
  for (int i = 0; i < 500; ++i) fprintf(mem, "line %d\n", i * i);
  fclose(mem);
  FILE* in = fmemopen(text, text_len, "r");
  char* line = NULL;
  size_t cap = 0;
  long total = 0;
  while (getline(&line, &cap, in) > 0) total += atol(line + 5);
  fclose(in);
  free(line);
  free(text);
  printf("lines total %ld\n", total);

  char* joined = strdup("");
  for (int i = 0; i < 50; ++i) {
    char* next_joined = NULL;
    if (asprintf(&next_joined, "%s%d,", joined, i) < 0) return 1;
    free(joined);
    joined = next_joined;
  }
  printf("joined %zu %.20s\n", strlen(joined), joined);
  free(joined);

  void* v = valloc(100);
  void* pv = pvalloc(100);
  printf("page aligned %d %d\n", (int)((uintptr_t)v % (uintptr_t)sysconf(_SC_PAGESIZE) == 0),
         (int)((uintptr_t)pv % (uintptr_t)sysconf(_SC_PAGESIZE) == 0));
  free(v);
  free(pv);
  return 0;
}
