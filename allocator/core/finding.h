// What the core finds, as values: the kinds of error (and their one name
// each, shared by the fault handler and every free-time check, so all reports
// agree), the block a finding is about and the finding itself. The core never
// prints: it hands a Finding to the reporter the layer above installs
// (core/hooks.h).
#pragma once

#include <cstdint>

namespace guardarena {

enum class ErrorKind : std::uint8_t {
  kHeapBufferOverflow,
  kHeapBufferUnderflow,
  kHeapUseAfterFree,
  kWildAccess,
  kDoubleFree,
  kInvalidFree,
  kAllocDeallocMismatch,
  kSizeMismatch,
  kSlackOverflow,    // canary after the block overwritten
  kSlackUnderflow,   // canary before the block overwritten
  kWriteAfterFree,   // fast mode: poison of a freed block changed
  kUseAfterRelease,  // pmr: pointer into an arena after release()
  // Faults outside every arena, reported by the fault handler.
  kSegvUnknownAddress,
  kBusUnknownAddress,
  kStackOverflow,  // an access to the guard region below a thread's stack
};

constexpr const char* error_kind_name(ErrorKind k) noexcept {
  switch (k) {
    case ErrorKind::kHeapBufferOverflow:
      return "heap-buffer-overflow";
    case ErrorKind::kHeapBufferUnderflow:
      return "heap-buffer-underflow";
    case ErrorKind::kHeapUseAfterFree:
      return "heap-use-after-free";
    case ErrorKind::kWildAccess:
      return "wild-access";
    case ErrorKind::kDoubleFree:
      return "double-free";
    case ErrorKind::kInvalidFree:
      return "invalid-free";
    case ErrorKind::kAllocDeallocMismatch:
      return "alloc-dealloc-mismatch";
    case ErrorKind::kSizeMismatch:
      return "dealloc-size-mismatch";
    case ErrorKind::kSlackOverflow:
      return "heap-buffer-overflow";
    case ErrorKind::kSlackUnderflow:
      return "heap-buffer-underflow";
    case ErrorKind::kWriteAfterFree:
      return "heap-use-after-free";
    case ErrorKind::kUseAfterRelease:
      return "use-after-release";
    case ErrorKind::kSegvUnknownAddress:
      return "SEGV";
    case ErrorKind::kBusUnknownAddress:
      return "BUS";
    case ErrorKind::kStackOverflow:
      return "stack-overflow";
  }
  return "unknown";
}

// How a block was allocated, to catch mismatched deallocation.
enum class AllocKind : std::uint8_t { kMalloc, kNew, kNewArray, kPmr };

constexpr const char* alloc_kind_name(AllocKind k) noexcept {
  switch (k) {
    case AllocKind::kMalloc:
      return "malloc";
    case AllocKind::kNew:
      return "operator new";
    case AllocKind::kNewArray:
      return "operator new []";
    case AllocKind::kPmr:
      return "memory_resource::allocate";
  }
  return "?";
}
constexpr const char* dealloc_kind_name(AllocKind k) noexcept {
  switch (k) {
    case AllocKind::kMalloc:
      return "free";
    case AllocKind::kNew:
      return "operator delete";
    case AllocKind::kNewArray:
      return "operator delete []";
    case AllocKind::kPmr:
      return "memory_resource::deallocate";
  }
  return "?";
}

// Everything a report needs about one block.
struct BlockInfo {
  std::uintptr_t block = 0;
  std::uint64_t size = 0;
  std::uint64_t align = 0;
  std::uint8_t alloc_kind = 0;
  std::uint32_t alloc_stack = 0, free_stack = 0, alloc_tid = 0, free_tid = 0;
};

// One error found by the core (free-time checks) or by the fault handler's
// query of the core: the kind, the address it concerns, the block nearest to
// it and the numbers the report quotes.
struct Finding {
  ErrorKind kind = ErrorKind::kWildAccess;
  std::uintptr_t address = 0;  // faulting or freed address
  bool has_block = false;
  BlockInfo block;
  std::int64_t distance = 0;        // address - block
  std::uint64_t bad_bytes = 0;      // canary: how many bytes were damaged
  std::uint64_t expected_size = 0;  // size/alignment mismatch: what the caller said
  std::uint64_t expected_align = 0;
  std::uint8_t dealloc_kind = 0;  // AllocKind of the deallocation call
};

}  // namespace guardarena
