// A block read after it was given back to guarded_resource: the read faults
// on the first touch and the report shows where the block was allocated and
// where it was freed.
#include <cstdio>

#include <guardarena/guardarena.hpp>

struct Session {
  int id;
  char name[60];
};

[[gnu::noinline]] Session* open_session(std::pmr::memory_resource& mr) {
  auto* s = static_cast<Session*>(mr.allocate(sizeof(Session), alignof(Session)));
  s->id = 7;
  return s;
}

[[gnu::noinline]] void close_session(std::pmr::memory_resource& mr, Session* s) {
  mr.deallocate(s, sizeof(Session), alignof(Session));
}

int main() {
  guardarena::guarded_resource arena;
  Session* s = open_session(arena);
  close_session(arena, s);
  std::printf("session id after close: %d\n", s->id);  // use after free: faults here
  return 0;
}
