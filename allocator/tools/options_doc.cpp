// Prints the options table as Markdown (for README.md and docs/options.md) or
// as --help text. The docs are generated from options.inc through this tool
// and a test checks that they match: one place for each fact.
#include <cstring>

#include "options/options.h"
#include "os/raw_writer.h"

int main(int argc, char** argv) {
  static char buf[65536];
  guardarena::RawWriter w(buf, sizeof buf);
  if (argc > 1 && std::strcmp(argv[1], "--help-text") == 0) {
    guardarena::write_options_help(w);
  } else {
    guardarena::write_options_markdown(w);
  }
  w.flush_to(1);
  return 0;
}
