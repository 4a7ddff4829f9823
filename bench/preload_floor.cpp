// The floor of any LD_PRELOAD allocator: malloc, calloc, realloc and free
// forwarded to glibc and nothing else. bench/run measures it beside the
// allocators, so the cost of merely interposing (one more call and indirect
// jump per operation) is separated from what guardarena's sampled-out path
// adds on top of it. The rest of the family (memalign, malloc_usable_size,
// ...) stays glibc's own, which is the same heap.
#include <cstddef>

extern "C" {
void* __libc_malloc(std::size_t size) noexcept;
void* __libc_calloc(std::size_t n, std::size_t size) noexcept;
void* __libc_realloc(void* p, std::size_t size) noexcept;
void __libc_free(void* p) noexcept;

__attribute__((visibility("default"))) void* malloc(std::size_t size) noexcept {
  return __libc_malloc(size);
}
__attribute__((visibility("default"))) void* calloc(std::size_t n, std::size_t size) noexcept {
  return __libc_calloc(n, size);
}
__attribute__((visibility("default"))) void* realloc(void* p, std::size_t size) noexcept {
  return __libc_realloc(p, size);
}
__attribute__((visibility("default"))) void free(void* p) noexcept {
  __libc_free(p);
}
}
