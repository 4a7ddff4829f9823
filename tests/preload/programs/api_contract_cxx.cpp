// The C++ entry points' contract under the shim: std::bad_alloc and the
// new_handler loop, nothrow forms, alignment, sized and aligned deletes.
// Prints one line per failed check; exits with the number of failures.
#include <cstdint>
#include <cstdio>
#include <new>

static int failures;
#define CHECK(cond)                                         \
  do {                                                      \
    if (!(cond)) {                                          \
      std::printf("FAILED line %d: %s\n", __LINE__, #cond); \
      ++failures;                                           \
    }                                                       \
  } while (0)

static volatile std::size_t huge = SIZE_MAX / 2;
static int handler_calls;

static void give_up_handler() {
  ++handler_calls;
  std::set_new_handler(nullptr);  // the next failure throws
}

struct alignas(128) Wide {
  char bytes[200];
};

int main() {
  bool threw = false;
  try {
    void* p = ::operator new(huge);
    ::operator delete(p);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);

  threw = false;
  try {
    char* a = new char[huge];
    delete[] a;
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);

  CHECK(::operator new(huge, std::nothrow) == nullptr);
  CHECK(::operator new[](huge, std::nothrow) == nullptr);
  CHECK(::operator new (huge, std::align_val_t{64}, std::nothrow) == nullptr);

  std::set_new_handler(give_up_handler);
  threw = false;
  try {
    ::operator new(huge);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw && handler_calls == 1);

  void* z1 = ::operator new(0);
  void* z2 = ::operator new(0);
  CHECK(z1 != nullptr && z2 != nullptr && z1 != z2);
  ::operator delete(z1);
  ::operator delete (z2, std::size_t{0});

  Wide* w = new Wide();
  CHECK(reinterpret_cast<std::uintptr_t>(w) % 128 == 0);
  delete w;  // sized + aligned delete
  Wide* wa = new Wide[3];
  CHECK(reinterpret_cast<std::uintptr_t>(wa) % 128 == 0);
  delete[] wa;

  void* a = ::operator new (100, std::align_val_t{256});
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 256 == 0);
  ::operator delete (a, 100, std::align_val_t{256});
  void* b = ::operator new[](100, std::align_val_t{64}, std::nothrow);
  CHECK(b != nullptr && reinterpret_cast<std::uintptr_t>(b) % 64 == 0);
  ::operator delete[](b, std::align_val_t{64}, std::nothrow);
  void* c = ::operator new(24, std::nothrow);
  ::operator delete(c, std::nothrow);
  void* d = ::operator new[](24);
  ::operator delete[](d, 24);
  void* e = ::operator new[](24, std::align_val_t{32});
  ::operator delete[](e, 24, std::align_val_t{32});
  void* f = ::operator new (24, std::align_val_t{32});
  ::operator delete (f, std::align_val_t{32}, std::nothrow);
  ::operator delete(nullptr);
  ::operator delete[](nullptr);

  std::printf("api contract c++: %d failures\n", failures);
  return failures;
}
