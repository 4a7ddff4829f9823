// A program linked with the pmr library that takes its guardarena options
// from its environment, as a tool might, then writes one byte past a block.
// Installed set-user-ID by secure_execution_test.cpp.
#include <cstdio>
#include <cstdlib>
#include <memory_resource>

#include <guardarena/guardarena.hpp>

int main() {
  const char* text = std::getenv("GUARDARENA_OPTIONS");
  guardarena::guarded_resource arena{text != nullptr ? text : ""};
  auto* p = static_cast<volatile char*>(arena.allocate(64, 1));
  std::printf("reached the statement\n");
  std::fflush(stdout);
  p[64] = 'x';  // BUG
  std::printf("after the statement\n");
  return 0;
}
