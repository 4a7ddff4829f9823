/* guardarena's C interface, exported by libguardarena.so (the LD_PRELOAD
 * library). Self-contained: no other header needed. A program that must
 * also run without the library can declare the functions weak and call them
 * only when their address is not null. */
#ifndef GUARDARENA_GUARDARENA_H
#define GUARDARENA_GUARDARENA_H

#ifdef __cplusplus
extern "C" {
#endif

/* Checks the heap now, as check_heap_at_exit=1 does at exit: the canaries of
 * every live block and, in fast mode, the poison of every quarantined block.
 * Each damaged block gets a report (kind, size, damaged offsets, allocation
 * stack) on stderr or log_path. Returns the number of damaged blocks, 0 when
 * the heap is intact; never ends the process. Call it where no other thread
 * is freeing: a block freed during the check may be misjudged. */
int guardarena_check_heap(void);

#ifdef __cplusplus
}
#endif

#endif /* GUARDARENA_GUARDARENA_H */
