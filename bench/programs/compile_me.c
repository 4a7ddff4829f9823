/* Fixed C translation unit for bench/run's "real programs" timing
 * (gcc -O2 -c compile_me.c; -DGUARDARENA_BENCH_QUICK halves it). It is never run; it gives the compiler enough
 * work (many functions, inlining, loops, a big switch, struct copies) that
 * cc1's own malloc traffic dominates. Deterministic, no headers beyond the
 * compiler's own. */
#include <stddef.h>
#include <stdint.h>

struct vec3 { double x, y, z; };
struct item { uint32_t key; uint32_t flags; struct vec3 pos; char name[24]; };

static inline struct vec3 vadd(struct vec3 a, struct vec3 b) { struct vec3 r = { a.x + b.x, a.y + b.y, a.z + b.z }; return r; }
static inline struct vec3 vscale(struct vec3 a, double s) { struct vec3 r = { a.x * s, a.y * s, a.z * s }; return r; }
static inline double vdot(struct vec3 a, struct vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

#define DEFINE_KERNEL(N)                                                        \
  double kernel_##N(const struct item *items, size_t n, double k) {             \
    double acc = 0;                                                             \
    struct vec3 c = { 0, 0, 0 };                                                \
    for (size_t i = 0; i < n; ++i) {                                            \
      struct vec3 p = vscale(items[i].pos, k + (double)N);                      \
      c = vadd(c, p);                                                           \
      if ((items[i].flags & (1u << (N % 32))) != 0) acc += vdot(p, c);          \
      else acc -= (double)(items[i].key % (N + 3));                             \
      for (size_t j = 0; j < sizeof items[i].name; ++j)                         \
        acc += (double)(items[i].name[j] ^ (char)(N + j));                      \
    }                                                                           \
    return acc + vdot(c, c);                                                    \
  }                                                                             \
  uint32_t hash_##N(const char *s, size_t n) {                                  \
    uint32_t h = 2166136261u ^ (uint32_t)N;                                     \
    for (size_t i = 0; i < n; ++i) { h ^= (unsigned char)s[i]; h *= 16777619u; } \
    switch (h % 8) {                                                            \
      case 0: return h ^ 0x9e3779b9u; case 1: return h + N; case 2: return h * 3; \
      case 3: return h >> 3; case 4: return h << 5; case 5: return ~h;          \
      case 6: return h - N; default: return h;                                  \
    }                                                                           \
  }                                                                             \
  void sort_##N(struct item *a, size_t n) {                                     \
    for (size_t i = 1; i < n; ++i) {                                            \
      struct item t = a[i];                                                     \
      size_t j = i;                                                             \
      while (j > 0 && (a[j - 1].key ^ N) > (t.key ^ N)) { a[j] = a[j - 1]; --j; } \
      a[j] = t;                                                                 \
    }                                                                           \
  }

#define DEFINE_10(B) DEFINE_KERNEL(B##0) DEFINE_KERNEL(B##1) DEFINE_KERNEL(B##2) DEFINE_KERNEL(B##3) \
  DEFINE_KERNEL(B##4) DEFINE_KERNEL(B##5) DEFINE_KERNEL(B##6) DEFINE_KERNEL(B##7) DEFINE_KERNEL(B##8) \
  DEFINE_KERNEL(B##9)

DEFINE_10(1)
#ifndef GUARDARENA_BENCH_QUICK
DEFINE_10(2)
#endif
