/* A block whose only reference is a register of a thread still running at
   exit: not a leak, as long as the scan reads that thread's registers. The
   thread keeps the block's address in a callee-saved register (x86-64 r12,
   AArch64 x19) and spins; every other copy is gone (the global holds it
   xor-ed, the dead frames that held it are overwritten, every other
   register the compiler lets go of is cleared).

   Arguments:
     leak     the thread clears the register before main returns: the block
              is leaked and must be listed.
     checked  main calls guardarena_check_heap() while the register still
              holds the address: that check pauses the thread, and the
              signal frame it leaves below the thread's stack pointer keeps
              a copy of the register, dead once the thread goes on. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

int guardarena_check_heap(void) __attribute__((weak));

static volatile uintptr_t hidden; /* the block's address ^ KEY */
static volatile int spinning;     /* the thread holds the address in its register */
static volatile int drop;         /* main: apply the mask now */
static volatile int dropped;      /* the thread: done */
static int leak_it;

/* 10,000 bytes: a size no other allocation of the process has, so no stale
   copy of the block's address from an earlier life of its slot (a dead frame
   of the loader's on the main stack) can keep it reachable. */
__attribute__((noinline)) static uintptr_t make_block(void) {
  char* p = malloc(10000);
  memset(p, 3, 10000);
  return (uintptr_t)p ^ KEY;
}

/* Overwrites the dead frames below the caller's, where make_block() and
   malloc left the address. */
__attribute__((noinline)) static void scrub_stack(void) {
  volatile char pad[65536];
  memset((char*)pad, 0, sizeof pad);
}

static void* holder(void* arg) {
  (void)arg;
  hidden = make_block();
  scrub_stack();
  uintptr_t keep = leak_it ? 0 : ~(uintptr_t)0;
#if defined(__x86_64__)
  __asm__ volatile(
      "mov %[hidden], %%r12\n\t"
      "xor %[key], %%r12\n\t"
      "movq $0, %[hidden]\n\t"
      "xor %%eax, %%eax\n\t"
      "xor %%ecx, %%ecx\n\t"
      "xor %%edx, %%edx\n\t"
      "xor %%esi, %%esi\n\t"
      "xor %%edi, %%edi\n\t"
      "xor %%r8d, %%r8d\n\t"
      "xor %%r9d, %%r9d\n\t"
      "xor %%r10d, %%r10d\n\t"
      "xor %%r11d, %%r11d\n\t"
      "movl $1, %[spinning]\n\t"
      "1: pause\n\t"
      "cmpl $0, %[drop]\n\t"
      "je 1b\n\t"
      "and %[keep], %%r12\n\t"
      "movl $1, %[dropped]\n\t"
      "2: pause\n\t"
      "jmp 2b\n\t"
      : [hidden] "+m"(hidden), [spinning] "=m"(spinning), [dropped] "=m"(dropped)
      : [key] "r"(KEY), [keep] "r"(keep), [drop] "m"(drop)
      : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "memory");
#elif defined(__aarch64__)
  /* Fixed registers for the operands, so every other one can be cleared. */
  register uintptr_t held __asm__("x19") = KEY;
  register uintptr_t mask __asm__("x20") = keep;
  register uintptr_t scratch __asm__("x21") = 0;
  register volatile uintptr_t* where __asm__("x22") = &hidden;
  register volatile int* spin_flag __asm__("x23") = &spinning;
  register volatile int* drop_flag __asm__("x24") = &drop;
  register volatile int* done_flag __asm__("x25") = &dropped;
  __asm__ volatile(
      "ldr x21, [x22]\n\t"
      "eor x19, x21, x19\n\t"
      "str xzr, [x22]\n\t"
      "mov x21, #0\n\tmov x22, #0\n\t"
      "mov x0, #0\n\tmov x1, #0\n\tmov x2, #0\n\tmov x3, #0\n\t"
      "mov x4, #0\n\tmov x5, #0\n\tmov x6, #0\n\tmov x7, #0\n\t"
      "mov x8, #0\n\tmov x9, #0\n\tmov x10, #0\n\tmov x11, #0\n\t"
      "mov x12, #0\n\tmov x13, #0\n\tmov x14, #0\n\tmov x15, #0\n\t"
      "mov x16, #0\n\tmov x17, #0\n\tmov x18, #0\n\t"
      "mov x26, #0\n\tmov x27, #0\n\tmov x28, #0\n\t"
      "mov w0, #1\n\t"
      "str w0, [x23]\n\t"
      "mov x0, #0\n\t"
      "1: yield\n\t"
      "ldr w0, [x24]\n\t"
      "cbz w0, 1b\n\t"
      "and x19, x19, x20\n\t"
      "mov w0, #1\n\t"
      "str w0, [x25]\n\t"
      "mov x0, #0\n\t"
      "2: yield\n\t"
      "b 2b\n\t"
      : "+r"(held), "+r"(mask), "+r"(scratch), "+r"(where), "+r"(spin_flag), "+r"(drop_flag),
        "+r"(done_flag)
      :
      : "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
        "x14", "x15", "x16", "x17", "x18", "x26", "x27", "x28", "memory");
#else
#error "leak_in_register.c: x86-64 and AArch64 only"
#endif
  return 0;
}

int main(int argc, char** argv) {
  int checked = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "leak") == 0) leak_it = 1;
    if (strcmp(argv[i], "checked") == 0) checked = 1;
  }
  pthread_t t;
  pthread_create(&t, 0, holder, 0);
  while (!spinning) sched_yield();
  if (checked && guardarena_check_heap != NULL) guardarena_check_heap();
  drop = 1;
  while (!dropped) sched_yield();
  return 0; /* exits with the holder still spinning */
}
