/* dlopen/dlclose a library with a big TLS block and allocating constructors,
   many times, from two threads' worth of TLS use. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static const char* path;

static void* use_lib(void* arg) {
  (void)arg;
  void* h = dlopen(path, RTLD_NOW);
  if (!h) return (void*)1;
  int (*touch)(int) = (int (*)(int))dlsym(h, "lib_touch");
  int r = touch ? touch(5) : -1;
  dlclose(h);
  return r == 8 ? NULL : (void*)1;
}

int main(int argc, char** argv) {
  path = argc > 1 ? argv[1] : "./libpreload_big_tls.so";
  int bad = 0;
  for (int i = 0; i < 100; ++i) {
    pthread_t t;
    void* r1 = use_lib(NULL);
    void* r2 = NULL;
    pthread_create(&t, NULL, use_lib, NULL);
    pthread_join(t, &r2);
    bad += r1 != NULL || r2 != NULL;
  }
  printf("dlopen rounds with errors: %d\n", bad);
  return bad == 0 ? 0 : 1;
}
