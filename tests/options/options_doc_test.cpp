// The README's options table is generated from options.inc; this test fails
// when someone edits one without the other. Regenerate with
//   build/allocator/guardarena_options_doc  (then paste between the markers)
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "options/options.h"
#include "os/raw_writer.h"

namespace guardarena {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string generated_table() {
  static char buf[65536];
  RawWriter w(buf, sizeof buf);
  write_options_markdown(w);
  return std::string(buf, w.size());
}

std::string between_markers(const std::string& doc) {
  const std::string begin = "<!-- options-table:begin -->\n";
  const std::string end = "<!-- options-table:end -->";
  auto b = doc.find(begin);
  auto e = doc.find(end);
  if (b == std::string::npos || e == std::string::npos) return "<markers missing>";
  return doc.substr(b + begin.size(), e - b - begin.size());
}

TEST(OptionsDocTest, ReadmeTableMatchesTheOptionTable) {
  std::string readme = read_file(std::string(GUARDARENA_SOURCE_DIR) + "/README.md");
  EXPECT_EQ(between_markers(readme), generated_table());
}

TEST(OptionsDocTest, DocsOptionsReferenceMatchesTheOptionTable) {
  std::string doc = read_file(std::string(GUARDARENA_SOURCE_DIR) + "/docs/options.md");
  EXPECT_EQ(between_markers(doc), generated_table());
}

}  // namespace
}  // namespace guardarena
