/* The C entry points' contract under the shim: impossible requests fail with
 * the right errno and nothing aborts, errno rules, realloc moves, usable size
 * is the requested size, glibc's statistics calls answer. Prints one line per
 * failed check and exits with the number of failures. Only meaningful under
 * the shim (glibc 2.36 differs on aligned_alloc and malloc_usable_size). */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      printf("FAILED line %d: %s (errno %d)\n", __LINE__, #cond, errno); \
      ++failures;                                                        \
    }                                                                    \
  } while (0)

static volatile size_t huge = SIZE_MAX;

int main(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void* p;

  errno = 0;
  CHECK(malloc(huge) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(malloc(huge / 2) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(calloc(huge / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(realloc(NULL, huge) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(reallocarray(NULL, huge, 2) == NULL && errno == ENOMEM);

  p = malloc(0);
  CHECK(p != NULL);
  free(p);
  p = calloc(0, 8);
  CHECK(p != NULL);
  free(p);

  p = malloc(13);
  CHECK(malloc_usable_size(p) == 13);
  CHECK(((uintptr_t)p % 16) == 0);
  free(p);
  CHECK(malloc_usable_size(NULL) == 0);

  /* realloc: NULL -> malloc, moves on growth and on shrinking, keeps data. */
  char* a = realloc(NULL, 100);
  CHECK(a != NULL && malloc_usable_size(a) == 100);
  memset(a, 'q', 100);
  char* b = realloc(a, 200);
  CHECK(b != NULL && b != a && b[0] == 'q' && b[99] == 'q');
  CHECK(malloc_usable_size(b) == 200);
  char* c = realloc(b, 50);
  CHECK(c != NULL && c != b && c[49] == 'q' && malloc_usable_size(c) == 50);
  errno = 0;
  CHECK(realloc(c, huge) == NULL && errno == ENOMEM);
  CHECK(c[0] == 'q');           /* still ours after the failed realloc */
  CHECK(realloc(c, 0) == NULL); /* frees, as glibc does */
  char* d = reallocarray(NULL, 10, 10);
  CHECK(d != NULL && malloc_usable_size(d) == 100);
  free(d);

  /* posix_memalign: errors are returned, errno is never touched. */
  errno = 4242;
  p = NULL;
  CHECK(posix_memalign(&p, 3, 16) == EINVAL && p == NULL);
  CHECK(posix_memalign(&p, 4, 16) == EINVAL);
  CHECK(posix_memalign(&p, 0, 16) == EINVAL);
  CHECK(posix_memalign(&p, 64, huge) == ENOMEM);
  CHECK(posix_memalign(&p, 256, 10) == 0 && ((uintptr_t)p % 256) == 0);
  CHECK(errno == 4242);
  free(p);

  errno = 0;
  CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
  p = aligned_alloc(64, 100);
  CHECK(p != NULL && ((uintptr_t)p % 64) == 0 && malloc_usable_size(p) == 100);
  free(p);
  p = memalign(24, 10); /* glibc rounds up to 32 */
  CHECK(p != NULL && ((uintptr_t)p % 32) == 0);
  free(p);
  errno = 0;
  CHECK(memalign(huge, 1) == NULL && errno == EINVAL);
  p = memalign(page * 4, 10);
  CHECK(p != NULL && ((uintptr_t)p % (page * 4)) == 0);
  free(p);
  p = valloc(1);
  CHECK(p != NULL && ((uintptr_t)p % page) == 0);
  free(p);
  p = pvalloc(1);
  CHECK(p != NULL && ((uintptr_t)p % page) == 0 && malloc_usable_size(p) == page);
  free(p);
  errno = 0;
  CHECK(pvalloc(huge) == NULL && errno == ENOMEM);

  /* free keeps errno. */
  p = malloc(10);
  errno = 4243;
  free(p);
  free(NULL);
  CHECK(errno == 4243);

  /* Successful allocations keep errno too, cold and warm (fast mode's short
   * path reuses slots after the first few hundred). */
  for (int i = 0; i < 3000; ++i) {
    errno = 4244;
    char* b = malloc(1 + (size_t)(i % 700));
    char* z = calloc(1, 24);
    b = realloc(b, 900);
    CHECK(b != NULL && z != NULL && errno == 4244);
    free(z);
    free(b);
    CHECK(errno == 4244);
  }

  /* calloc zeroes, also when a slot is reused. */
  for (int round = 0; round < 3; ++round) {
    unsigned char* z = calloc(100, 41);
    int nonzero = 0;
    for (int i = 0; i < 4100; ++i) nonzero |= z[i];
    CHECK(nonzero == 0);
    memset(z, 0xff, 4100);
    free(z);
  }

  /* glibc's tuning and statistics calls answer harmlessly. */
  CHECK(mallopt(M_TRIM_THRESHOLD, 0) == 1);
  CHECK(malloc_trim(0) >= 0);
  /* mallinfo2 describes the heap the program uses: 64 live blocks of 1000
     bytes are counted in use (uordblks) and in the total (arena), and their
     count in ordblks. */
  {
    enum { kBlocks = 64, kSize = 1000 };
    void* held[kBlocks];
    for (int i = 0; i < kBlocks; ++i) {
      held[i] = malloc(kSize);
      memset(held[i], i, kSize);
    }
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.uordblks >= (size_t)kBlocks * kSize);
    CHECK(mi.arena >= mi.uordblks);
    CHECK(mi.ordblks >= kBlocks);
    for (int i = 0; i < kBlocks; ++i) free(held[i]);
    struct mallinfo2 after = mallinfo2();
    CHECK(after.uordblks + (size_t)kBlocks * kSize <= mi.uordblks);
  }
  FILE* f = tmpfile();
  CHECK(f != NULL && malloc_info(0, f) == 0);
  errno = 0;
  CHECK(malloc_info(1, f) == -1 && errno == EINVAL);
  if (f != NULL) fclose(f);

  /* glibc functions that allocate through malloc, freed with free. */
  char* s = strdup("hello");
  CHECK(s != NULL && malloc_usable_size(s) == 6);
  free(s);
  char* line = NULL;
  size_t cap = 0;
  FILE* mem = fmemopen("one\ntwo\n", 8, "r");
  CHECK(getline(&line, &cap, mem) == 4 && strcmp(line, "one\n") == 0);
  fclose(mem);
  free(line);
  char* out = NULL;
  CHECK(asprintf(&out, "%d-%s", 42, "x") == 4);
  free(out);

  printf("api contract: %d failures\n", failures);
  return failures;
}
