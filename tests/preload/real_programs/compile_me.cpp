// Compiled by g++ under the shim in the real-program test.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

int count_words(const std::vector<std::string>& words) {
  std::map<std::string, int> counts;
  for (const auto& w : words) ++counts[w];
  return static_cast<int>(std::count_if(counts.begin(), counts.end(), [](const auto& kv) { return kv.second > 1; }));
}
