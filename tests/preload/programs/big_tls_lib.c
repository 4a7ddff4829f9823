/* A library with a large TLS block and a constructor and destructor that
   allocate, for dlopen/dlclose loops under the shim. */
#include <stdlib.h>
#include <string.h>

__thread char big_tls[256 * 1024];
static char* from_ctor;

__attribute__((constructor)) static void lib_init(void) {
  from_ctor = malloc(4096);
  memset(from_ctor, 3, 4096);
}
__attribute__((destructor)) static void lib_fini(void) { free(from_ctor); }

int lib_touch(int i) {
  big_tls[i % sizeof big_tls] = (char)i;
  char* p = malloc(64);
  p[63] = big_tls[i % sizeof big_tls];
  int r = p[63];
  free(p);
  return r + from_ctor[0];
}
