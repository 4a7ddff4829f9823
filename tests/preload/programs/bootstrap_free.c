/* Blocks allocated in a library constructor, and by the dynamic loader for
 * dlopen/dlerror/dlsym, are usable and freed later without complaint. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char* ctor_block;
extern char* ctor_string;
extern int* ctor_zeroed;

int main(void) {
  int zero = 1;
  for (int i = 0; i < 16; ++i) zero &= ctor_zeroed[i] == 0;
  printf("%s, %zu, zeroed %d\n", ctor_string, strlen(ctor_block), zero);
  ctor_block = realloc(ctor_block, 1000);
  printf("realloc kept %c\n", ctor_block[98]);
  free(ctor_block);
  free(ctor_string);
  free(ctor_zeroed);

  void* missing = dlopen("libguardarena-no-such-library.so", RTLD_NOW);
  const char* err = dlerror();
  printf("dlopen missing: %s, error %s\n", missing == NULL ? "NULL" : "?",
         err != NULL ? "set" : "unset");
  void* libm = dlopen("libm.so.6", RTLD_NOW);
  double (*cosine)(double) = libm != NULL ? (double (*)(double))dlsym(libm, "cos") : NULL;
  printf("cos(0) = %.1f\n", cosine != NULL ? cosine(0.0) : -1.0);
  if (dlsym(libm, "no_such_symbol_here") == NULL)
    printf("dlsym missing: %s\n", dlerror() != NULL ? "error" : "none");
  if (libm != NULL) dlclose(libm);
  return 0;
}
