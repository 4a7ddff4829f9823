// A guardarena user: a std::pmr::vector and a std::pmr::string in a
// guarded_resource, then the arena's statistics; also the rest of the public
// API (parse_options, unsynchronized_guarded_resource), so a symbol missing
// from the shared library fails the link. With "overflow" it writes one
// element past the vector's end, which must fault with a report.
#include <cstdio>
#include <cstring>
#include <memory_resource>
#include <string>
#include <vector>

#include <guardarena/guardarena.hpp>

int main(int argc, char** argv) {
  const bool overflow = argc > 1 && std::strcmp(argv[1], "overflow") == 0;
  guardarena::guarded_resource arena{"quarantine_bytes=1M"};
  std::pmr::vector<int> v{&arena};
  v.reserve(8);
  for (int i = 0; i < 8; ++i) v.push_back(i * i);
  std::pmr::string s{"installed guardarena consumer, long enough to allocate", &arena};
  if (overflow) {
    std::fflush(stdout);
    v.data()[8] = 1;  // one past the end: faults here
    std::puts("not reached");
    return 0;
  }
  guardarena::options o = guardarena::parse_options("mode=fast:protect_below=1");
  guardarena::unsynchronized_guarded_resource local{o};
  void* p = local.allocate(100, 8);
  const bool local_ok = local.owns(p) && local.get_options().get("protect_below") == "1";
  local.deallocate(p, 100, 8);
  local.release();

  guardarena::arena_stats st = arena.stats();
  std::printf("consumer: sum=%d live_blocks=%llu guarded_allocations=%llu backend=%s\n",
              v[1] + v[7], static_cast<unsigned long long>(st.live_blocks),
              static_cast<unsigned long long>(st.guarded_allocations), st.backend);
  return local_ok && st.live_blocks == 2 && st.guarded_allocations == 2 ? 0 : 1;
}
