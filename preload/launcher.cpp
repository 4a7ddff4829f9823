// guardarena: runs a program with libguardarena.so preloaded.
//
//   guardarena [--option=value ...] [--] program [args...]
//
// Translates its flags into GUARDARENA_OPTIONS (checked with the library's own
// parser, so a bad value fails here with the same message), puts the library
// found next to this executable first in LD_PRELOAD and execs the program: the
// program's exit status or death signal is the launcher's. An ordinary
// program, free to allocate; none of this runs inside the preloaded process.
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "options/options.h"
#include "os/raw_writer.h"
#include "os/secure_execution.h"

#ifndef GUARDARENA_VERSION
#define GUARDARENA_VERSION "unknown"
#endif

namespace {

constexpr int kUsageError = 2;
constexpr int kOptionsError = 1;  // what the library itself exits with

const char kUsage[] =
    "usage: guardarena [options] [--] program [args...]\n"
    "Runs program with libguardarena.so preloaded: every heap overflow, underflow and\n"
    "use-after-free faults at the buggy instruction and is reported on stderr.\n"
    "The exit status is the program's.\n"
    "\n"
    "Launcher options:\n"
    "  --mode=full|fast|sample  sample: full mode, one allocation in 1000 guarded\n"
    "                           (or --sample-rate=N), the rest served by glibc\n"
    "  --sample-rate=N          guard one allocation in N\n"
    "  --protect-below          blocks sit against the guard page below them (underflows)\n"
    "  --both-sides             run the program TWICE: blocks against the guard above\n"
    "                           (overflows), then below (underflows); both runs' reports\n"
    "                           are printed and the status is the first non-zero one.\n"
    "                           For tests, not for programs whose effects must happen once\n"
    "  --log-path=P             write reports to P.<pid> instead of stderr\n"
    "  --json                   reports as JSON (report_format=json)\n"
    "  --keep-runtime-allocators  leave language runtimes' own small-object\n"
    "                           allocators on (see below)\n"
    "  --option NAME=VALUE      any option below (also --option=NAME=VALUE)\n"
    "  --NAME=VALUE             any option below; '-' and '_' are the same in NAME,\n"
    "                           and a yes/no option alone means 1\n"
    "  --help, --version\n"
    "Options already in GUARDARENA_OPTIONS are kept; the launcher's come after them.\n"
    "The library is looked up next to this executable (build tree), then in\n"
    "../lib/guardarena/ (install tree), then in ../lib/\n"
    "(GUARDARENA_LIBRARY=/path/libguardarena.so overrides).\n"
    "Runtimes that keep their small objects in pools of their own are routed through\n"
    "malloc, so that their objects are guarded too, unless the variable is already\n"
    "set or --keep-runtime-allocators is given: PYTHONMALLOC=malloc (CPython's\n"
    "pymalloc), G_SLICE=always-malloc (GLib's slice allocator), GLIBCXX_FORCE_NEW=1\n"
    "(libstdc++'s pool allocators).\n"
    "\n";

[[noreturn]] void fail(int status, const std::string& message) {
  std::fprintf(stderr, "guardarena: %s\n", message.c_str());
  std::exit(status);
}

void print_help() {
  std::fputs(kUsage, stdout);
  static char buf[32768];
  guardarena::RawWriter w(buf, sizeof buf);
  guardarena::write_options_help(w);
  std::fwrite(w.data(), 1, w.size(), stdout);
}

const guardarena::OptionInfo* find_option(const std::string& name) {
  const guardarena::OptionInfo* table = guardarena::option_table();
  for (std::size_t i = 0; i < guardarena::kOptionCount; ++i) {
    if (name == table[i].name) return &table[i];
  }
  return nullptr;
}

std::string self_directory() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  std::string s(path);
  std::size_t slash = s.rfind('/');
  return slash == std::string::npos ? "." : s.substr(0, slash);
}

// The install tree's library directory relative to the launcher's, from
// cmake/install.cmake (bin/ -> lib/guardarena/ by default).
#ifndef GUARDARENA_INSTALL_PRELOAD_RELDIR
#define GUARDARENA_INSTALL_PRELOAD_RELDIR "../lib/guardarena"
#endif

std::string find_library() {
  if (const char* env = std::getenv("GUARDARENA_LIBRARY"); env != nullptr && *env != '\0') {
    if (::access(env, R_OK) != 0)
      fail(kOptionsError, std::string("GUARDARENA_LIBRARY=") + env + ": " + std::strerror(errno));
    return env;
  }
  std::string dir = self_directory();
  const std::string installed = dir + "/" GUARDARENA_INSTALL_PRELOAD_RELDIR;
  for (const std::string& candidate : {dir + "/libguardarena.so", installed + "/libguardarena.so",
                                       dir + "/../lib/libguardarena.so"}) {
    if (::access(candidate.c_str(), R_OK) == 0) {
      char real[PATH_MAX];
      return ::realpath(candidate.c_str(), real) != nullptr ? std::string(real) : candidate;
    }
  }
  fail(kOptionsError,
       "cannot find libguardarena.so in " + dir + ", " + installed + " or " + dir + "/../lib");
}

// Variables that make language runtimes allocate their small objects with
// malloc instead of pools of their own, where the shim cannot see them.
constexpr const char* kRuntimeAllocatorVariables[][2] = {
    {"PYTHONMALLOC", "malloc"},
    {"G_SLICE", "always-malloc"},
    {"GLIBCXX_FORCE_NEW", "1"},
};

struct Parsed {
  bool keep_runtime_allocators = false;
  bool both_sides = false;
  std::vector<std::string> options;  // "name=value", in order
  std::vector<char*> program;        // argv of the program, null-terminated later
};

// "--name[=value]" for an option of the table. Returns false if `name` is
// no option (the caller reports it).
bool add_table_option(Parsed& p, std::string name, const char* value) {
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  const guardarena::OptionInfo* info = find_option(name);
  if (info == nullptr) return false;
  if (value == nullptr) {
    if (std::strcmp(info->kind, "Bool") != 0)
      fail(kUsageError, "option --" + name + " needs a value (--" + name + "=VALUE)");
    value = "1";
  }
  p.options.push_back(name + "=" + value);
  return true;
}

Parsed parse_arguments(int argc, char** argv) {
  Parsed p;
  bool sample_mode = false;
  bool sample_rate_given = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;  // the program
    if (arg == "-h" || arg == "--help") {
      print_help();
      std::exit(0);
    }
    if (arg == "--version") {
      std::printf("guardarena %s\n", GUARDARENA_VERSION);
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) fail(kUsageError, "unknown flag '" + arg + "' (see --help)");
    std::size_t eq = arg.find('=');
    std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const char* value = eq == std::string::npos ? nullptr : argv[i] + eq + 1;
    if (name == "option") {
      if (value == nullptr) {
        if (i + 1 >= argc) fail(kUsageError, "--option needs NAME=VALUE");
        value = argv[++i];
      }
      p.options.emplace_back(value);
      sample_rate_given |= std::strncmp(value, "sample_rate=", 12) == 0;
    } else if (name == "mode" && value != nullptr && std::strcmp(value, "sample") == 0) {
      sample_mode = true;
      p.options.emplace_back("mode=full");
    } else if (name == "keep-runtime-allocators") {
      if (value != nullptr) fail(kUsageError, "--keep-runtime-allocators takes no value");
      p.keep_runtime_allocators = true;
    } else if (name == "both-sides") {
      if (value != nullptr) fail(kUsageError, "--both-sides takes no value");
      p.both_sides = true;
    } else if (name == "json") {
      if (value != nullptr) fail(kUsageError, "--json takes no value");
      p.options.emplace_back("report_format=json");
    } else {
      if (!add_table_option(p, name, value))
        fail(kUsageError, "unknown option '--" + name + "' (see --help)");
      sample_rate_given |= p.options.back().rfind("sample_rate=", 0) == 0;
    }
  }
  if (sample_mode && !sample_rate_given) p.options.emplace_back("sample_rate=1000");
  for (; i < argc; ++i) p.program.push_back(argv[i]);
  return p;
}

// --both-sides: one run per placement, each a child of the launcher with
// protect_below set last (it wins over GUARDARENA_OPTIONS and the flags).
// Returns the first non-zero status of the two (a death by signal N counts
// as 128+N, as shells report it), or 0.
int run_both_sides(const std::string& options, std::vector<char*>& program) {
  struct Side {
    const char* option;
    const char* what;
  };
  const Side sides[] = {{"protect_below=0", "blocks against the guard page above them"},
                        {"protect_below=1", "blocks against the guard page below them"}};
  int result = 0;
  int run = 0;
  for (const Side& side : sides) {
    ++run;
    const std::string with_side = options.empty() ? side.option : options + ":" + side.option;
    std::fprintf(stderr, "guardarena: run %d of 2 (%s): %s\n", run, side.option, side.what);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) fail(kOptionsError, std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::setenv("GUARDARENA_OPTIONS", with_side.c_str(), 1);
      ::execvp(program[0], program.data());
      int e = errno;
      std::fprintf(stderr, "guardarena: cannot run '%s': %s\n", program[0], std::strerror(e));
      ::_exit(e == ENOENT ? 127 : 126);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) fail(kOptionsError, std::string("waitpid: ") + std::strerror(errno));
    }
    const int code = WIFEXITED(status)     ? WEXITSTATUS(status)
                     : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                           : 1;
    std::fprintf(stderr, "guardarena: run %d of 2 (%s) ended with status %d\n", run, side.option,
                 code);
    if (result == 0) result = code;
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  // Set-user-ID, set-group-ID or with file capabilities, the launcher would
  // run a program its caller names, with a library its caller may name
  // (GUARDARENA_LIBRARY), with raised privileges: nothing here is safe to
  // do then. Install it as an ordinary executable.
  if (guardarena::os::secure_execution()) {
    fail(kOptionsError,
         "refusing to run in secure-execution mode (the launcher is set-user-ID, set-group-ID "
         "or has file capabilities); install it without them");
  }
  Parsed p = parse_arguments(argc, argv);
  if (p.program.empty()) {
    fail(kUsageError,
         "no program to run\nusage: guardarena [options] [--] program [args...] (see --help)");
  }
  std::string joined;
  if (const char* env = std::getenv("GUARDARENA_OPTIONS"); env != nullptr) joined = env;
  for (const std::string& o : p.options) {
    if (!joined.empty()) joined += ':';
    joined += o;
  }
  guardarena::Options checked;
  char error[512];
  if (!guardarena::parse_options(joined.c_str(), checked, error, sizeof error)) {
    std::fprintf(stderr, "%s\n", error);
    return kOptionsError;
  }
  std::string preload = find_library();
  if (const char* env = std::getenv("LD_PRELOAD"); env != nullptr && *env != '\0')
    preload += std::string(" ") + env;
  ::setenv("LD_PRELOAD", preload.c_str(), 1);
  ::setenv("GUARDARENA_OPTIONS", joined.c_str(), 1);
  if (!p.keep_runtime_allocators) {
    for (const auto& [name, value] : kRuntimeAllocatorVariables) ::setenv(name, value, 0);
  }
  p.program.push_back(nullptr);
  if (p.both_sides) return run_both_sides(joined, p.program);
  ::execvp(p.program[0], p.program.data());
  int e = errno;
  std::fprintf(stderr, "guardarena: cannot run '%s': %s\n", p.program[0], std::strerror(e));
  return e == ENOENT ? 127 : 126;
}
