// The kinds of error guardarena reports, and their one name each. Shared by
// the fault handler and every free-time check, so all reports agree.
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

}  // namespace guardarena
