/* Blocks whose only reference lives where a leak scan must still look, none
   of them a leak: a live thread's stack (the thread is still running at
   exit), a large glibc block (mmap'ed by glibc; the max_size option sends it
   there) and a glibc block in another thread's own glibc arena. With "leak"
   as the argument one 64-byte block really leaks too, and must be found. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sem_t held;
static void** volatile big;         /* 1 MiB of glibc: its own mmap */
static void** volatile thread_heap; /* glibc block from a second thread's arena */

static void* holder(void* arg) {
  (void)arg;
  void* volatile mine = malloc(48); /* referenced from this stack only */
  memset(mine, 1, 48);
  sem_post(&held);
  for (;;) pause();
  return 0;
}

static void* filler(void* arg) {
  (void)arg;
  void** b = malloc(8192); /* over max_size: glibc, this thread's arena */
  b[0] = malloc(40);
  memset(b[0], 2, 40);
  thread_heap = b;
  return 0;
}

__attribute__((noinline)) static void leak_one(void) {
  char* volatile p = malloc(64);
  p[0] = 1;
}

/* Overwrites the dead stack below main's frame, where leak_one() left its
   pointer: the exit path's frames lie there too, and the scan reads the
   stack above its own stack pointer. */
__attribute__((noinline)) static void scrub_stack(void) {
  volatile char pad[16384];
  memset((char*)pad, 0, sizeof pad);
}

int main(int argc, char** argv) {
  sem_init(&held, 0, 0);
  big = malloc(1 << 20);
  big[0] = malloc(32);
  memset(big[0], 3, 32);
  pthread_t t, f;
  pthread_create(&t, 0, holder, 0);
  sem_wait(&held);
  pthread_create(&f, 0, filler, 0);
  pthread_join(f, 0);
  if (argc > 1 && strcmp(argv[1], "leak") == 0) leak_one();
  scrub_stack();
  printf("done\n");
  fflush(stdout);
  exit(0); /* the holder thread is still in pause() */
}
