// The slow side of os/thread.h's cached thread id.
#include "os/thread.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace guardarena::os {

constinit __attribute__((tls_model("initial-exec"),
                         visibility("hidden"))) thread_local std::uint32_t t_thread_id = 0;

std::uint32_t query_thread_id() noexcept {
  t_thread_id = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  return t_thread_id;
}

}  // namespace guardarena::os
