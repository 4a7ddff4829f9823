// A std::pmr::vector under guarded_resource, indexed one past its end through
// data(): the write faults on that exact statement and guardarena reports it.
#include <cstdio>
#include <memory_resource>
#include <vector>

#include <guardarena/guardarena.hpp>

int main() {
  guardarena::guarded_resource arena;
  std::pmr::vector<int> v{&arena};
  v.reserve(4);
  for (int i = 0; i < 4; ++i) v.push_back(i);
  std::printf("vector of %zu ints at %p; writing v.data()[4]...\n", v.size(),
              static_cast<void*>(v.data()));
  std::fflush(stdout);
  v.data()[4] = 42;  // one element past the end: faults here
  std::printf("not reached\n");
  return 0;
}
