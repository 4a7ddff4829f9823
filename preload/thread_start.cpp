// pthread_create, interposed so that every thread the program starts can
// report its own faults: it gets an alternate signal stack (a stack overflow
// leaves no room for the handler on the thread's own stack) and the bounds of
// its stack, recorded before the program's start routine runs. The signal
// stack lives in the wrapper's frame at the top of the new thread's stack:
// no mapping per thread, and nothing to give back when the thread ends.
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include <atomic>
#include <cerrno>

#include "init.h"
#include "report/report.h"

#define GUARDARENA_EXPORT extern "C" __attribute__((visibility("default")))

namespace guardarena::preload {
namespace {

using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
std::atomic<CreateFn> g_real_create{nullptr};

struct StartArgs {
  void* (*routine)(void*);
  void* arg;
};

// The alternate stack must be unregistered before the wrapper's frame goes
// away: on return, and on the forced unwind of pthread_exit() and
// cancellation (which runs this destructor, so start_thread is not noexcept).
struct AltStackScope {
  AltStackScope() = default;
  AltStackScope(const AltStackScope&) = delete;
  AltStackScope& operator=(const AltStackScope&) = delete;
  ~AltStackScope() { report::forget_thread_alt_stack(); }
};

// A thread whose whole stack is a few alternate stacks big (a small stack
// asked for with pthread_attr_setstacksize) gets none: the program needs
// that room more than the report does.
constexpr std::size_t kStackShareDivisor = 16;

// In a section of its own, which report/stack_printer.cpp leaves out of
// printed stacks.
__attribute__((section("guardarena_thread_glue"), noinline)) void* start_thread(void* p) {
  StartArgs args = *static_cast<StartArgs*>(p);
  ::free(p);
  AltStackScope scope;
  const std::size_t alt_size = report::thread_alt_stack_size();
  void* alt = nullptr;
  pthread_attr_t attr;
  std::size_t stack_size = 0;
  if (::pthread_getattr_np(::pthread_self(), &attr) == 0) {
    ::pthread_attr_getstacksize(&attr, &stack_size);
    ::pthread_attr_destroy(&attr);
  }
  if (stack_size / kStackShareDivisor >= alt_size) alt = __builtin_alloca(alt_size);
  report::prepare_thread_for_faults(alt, alt_size);
  return args.routine(args.arg);
}

}  // namespace
}  // namespace guardarena::preload

// The linker defines the section's bounds; declared hidden here, where the
// section is, so that they stay out of the dynamic symbol table.
extern "C" const char __start_guardarena_thread_glue[] __attribute__((visibility("hidden")));
extern "C" const char __stop_guardarena_thread_glue[] __attribute__((visibility("hidden")));
static const void* const g_thread_glue_bounds[2]
    __attribute__((used)) = {__start_guardarena_thread_glue, __stop_guardarena_thread_glue};

GUARDARENA_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                     void* (*routine)(void*), void* arg) {
  using namespace guardarena::preload;
  CreateFn real = g_real_create.load(std::memory_order_acquire);
  if (real == nullptr) {
    // dlsym may allocate: that is an ordinary malloc here, outside the shim.
    real = reinterpret_cast<CreateFn>(::dlsym(RTLD_NEXT, "pthread_create"));
    if (real == nullptr) return EAGAIN;
    g_real_create.store(real, std::memory_order_release);
  }
  // First the malloc, which initialises the shim (and reads the options).
  auto* args = static_cast<StartArgs*>(::malloc(sizeof(StartArgs)));
  if (args == nullptr) return real(thread, attr, routine, arg);
  if (!g_options.handle_segv) {
    ::free(args);
    return real(thread, attr, routine, arg);
  }
  args->routine = routine;
  args->arg = arg;
  int rc = real(thread, attr, start_thread, args);
  if (rc != 0) ::free(args);
  return rc;
}
