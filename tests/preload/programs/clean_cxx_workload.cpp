// A correct C++ program: containers, strings, streams, exceptions, threads,
// over-aligned types and shared ownership. Its output must be the same with
// and without the shim, in any mode.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct alignas(64) Cell {
  long value = 0;
};

static long thrower(int i) {
  if (i % 7 == 0) throw std::runtime_error("seven " + std::to_string(i));
  return i;
}

int main() {
  std::map<std::string, std::vector<int>> index;
  for (int i = 0; i < 5000; ++i) index["key" + std::to_string(i % 397)].push_back(i);
  long total = 0;
  for (const auto& [k, v] : index)
    total += static_cast<long>(k.size() * v.size()) + std::accumulate(v.begin(), v.end(), 0L);
  std::printf("map %zu %ld\n", index.size(), total);

  std::unordered_map<int, std::string> names;
  for (int i = 0; i < 3000; ++i)
    names.emplace(i,
                  std::string(static_cast<std::size_t>(i % 50), 'a' + static_cast<char>(i % 26)));
  std::size_t chars = 0;
  for (int i = 0; i < 3000; i += 3) chars += names.at(i).size();
  std::printf("unordered %zu %zu\n", names.size(), chars);

  std::vector<Cell> cells(1000);
  for (std::size_t i = 0; i < cells.size(); ++i) cells[i].value = static_cast<long>(i * i);
  cells.resize(3000);
  std::printf("cells %ld aligned %d\n", cells[999].value,
              static_cast<int>(reinterpret_cast<std::uintptr_t>(cells.data()) % 64 == 0));

  int caught = 0;
  long kept = 0;
  for (int i = 0; i < 200; ++i) {
    try {
      kept += thrower(i);
    } catch (const std::exception& e) {
      caught += e.what()[0] == 's';
    }
  }
  std::printf("exceptions %d %ld\n", caught, kept);

  std::ostringstream os;
  for (int i = 0; i < 1000; ++i) os << i << ' ';
  std::string s = os.str();
  std::printf("stream %zu\n", s.size());

  std::vector<std::thread> threads;
  std::vector<long> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &results] {
      std::vector<std::unique_ptr<std::string>> v;
      for (int i = 0; i < 2000; ++i)
        v.push_back(std::make_unique<std::string>(static_cast<std::size_t>(i % 100 + t), 'x'));
      long n = 0;
      for (auto& p : v) n += static_cast<long>(p->size());
      results[static_cast<std::size_t>(t)] = n;
    });
  }
  for (auto& th : threads) th.join();
  for (long r : results) std::printf("thread %ld\n", r);

  auto shared = std::make_shared<std::vector<int>>(100, 3);
  std::weak_ptr<std::vector<int>> weak = shared;
  std::printf("shared %d %ld\n", (*weak.lock())[50], weak.use_count());
  shared.reset();
  std::printf("expired %d\n", static_cast<int>(weak.expired()));
  return 0;
}
