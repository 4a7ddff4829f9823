// The dynamic symbols of libguardarena.so: every allocation entry point of
// libc and libstdc++, and nothing else.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "options/options.h"
#include "os/os_linux.h"
#include "preload_runner.h"
#include "support/kernel_facts.h"
#include "support/old_kernel.h"

namespace {

using namespace guardarena::preload_testing;
namespace fs = std::filesystem;

// ---- the exported surface -------------------------------------------------------

struct Symbol {
  std::string name;
  char type;
};

// Defined dynamic symbols of `path` (nm -D), without their version.
std::vector<Symbol> dynamic_symbols(const std::string& path) {
  std::vector<Symbol> syms;
  std::string cmd = "nm -D --defined-only '" + path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return syms;
  char line[1024];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    std::istringstream in(line);
    std::string addr, type, name;
    if (!(in >> addr >> type >> name)) continue;
    syms.push_back({name.substr(0, name.find('@')), type[0]});
  }
  ::pclose(p);
  return syms;
}

std::string library_of(const void* symbol) {
  Dl_info info{};
  return ::dladdr(symbol, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "";
}

bool is_function(char type) {
  return type == 'T' || type == 'W' || type == 'i';
}

// Heap functions of libc: the malloc family by name. Left out on purpose:
// __libc_* (glibc's own allocator, which the shim calls), the removed hooks
// (variables), and mcheck/mprobe/mtrace (inert in libc.so.6 since 2.34).
const std::regex kLibcHeapFunction(
    "malloc|free|cfree|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|"
    "pvalloc|"
    "malloc_[a-z_0-9]+|mallinfo2?|mallopt");
const std::regex kCxxOperator("_Z(nw|na|dl|da).*");

std::set<std::string> expected_exports() {
  std::set<std::string> want;
  std::string libc = library_of(reinterpret_cast<void*>(&::malloc));
  std::string libstdcxx = library_of(reinterpret_cast<void*>(&std::get_new_handler));
  for (const Symbol& s : dynamic_symbols(libc)) {
    if (is_function(s.type) && std::regex_match(s.name, kLibcHeapFunction)) want.insert(s.name);
  }
  for (const Symbol& s : dynamic_symbols(libstdcxx)) {
    if (is_function(s.type) && std::regex_match(s.name, kCxxOperator)) want.insert(s.name);
  }
  return want;
}

TEST(ExportsTest, EveryAllocationSymbolOfLibcAndLibstdcxxIsExported) {
  std::set<std::string> want = expected_exports();
  ASSERT_GE(want.size(), 20u + 15u) << "could not read the system libraries' symbols";
  std::set<std::string> have;
  for (const Symbol& s : dynamic_symbols(kLibrary)) {
    if (is_function(s.type)) have.insert(s.name);
  }
  for (const std::string& name : want)
    EXPECT_TRUE(have.count(name) != 0) << "not exported: " << name;
  std::size_t operators = 0;
  for (const std::string& name : want) operators += std::regex_match(name, kCxxOperator) ? 1 : 0;
  EXPECT_EQ(operators, 20u);
}

TEST(ExportsTest, NothingElseIsExported) {
  std::set<std::string> want = expected_exports();
  for (const Symbol& s : dynamic_symbols(kLibrary)) {
    if (starts_with(s.name, "guardarena_")) continue;
    // Interposed so that every thread gets an alternate signal stack.
    if (s.name == "pthread_create") continue;
    EXPECT_TRUE(want.count(s.name) != 0)
        << "unexpected export: " << s.name << " (" << s.type << ")";
  }
}

TEST(ExportsTest, NoGeneralDynamicTls) {
  // __tls_get_addr can call malloc for dlopen'ed modules: a malloc
  // replacement must use initial-exec TLS only.
  std::string cmd = "nm -D --undefined-only '" + kLibrary + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string all;
  char line[512];
  while (std::fgets(line, sizeof line, p) != nullptr) all += line;
  ::pclose(p);
  EXPECT_FALSE(all.empty());
  EXPECT_EQ(all.find("__tls_get_addr"), std::string::npos) << all;
}

}  // namespace
