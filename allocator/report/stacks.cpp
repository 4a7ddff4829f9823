// Glue between the arena's stack hook and the process-wide stack depot: the
// arena stores only depot ids in its metadata, reports load them back.
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

#include <algorithm>

#include "core/hooks.h"
#include "core/memory_budget.h"
#include "report/report.h"
#include "stack/stack_cache.h"
#include "stack/stack_trace.h"

extern "C" const ElfW(Ehdr) __ehdr_start;  // this object's ELF header (linker-defined)

namespace guardarena::report {
namespace {

// Constant-initialised and trivially destructible: usable from the first
// malloc to the last free at exit.
stack::StackDepot g_depot;

// Code range of the shared object guardarena lives in (libguardarena.so or
// libguardarena_pmr.so), so that its own frames can be trimmed from
// allocation stacks. Empty when guardarena is linked into the executable
// (static pmr library): then the executable's frames are the user's too.
// Read from our own program headers: no loader call, safe in early malloc.
stack::CodeRange compute_self_range() noexcept {
  stack::CodeRange r;
  const auto* ehdr = &__ehdr_start;
  auto base_image = reinterpret_cast<std::uintptr_t>(ehdr);
  const auto* phdrs = reinterpret_cast<const ElfW(Phdr)*>(base_image + ehdr->e_phoff);
  // The executable's program headers are where AT_PHDR says: that is us.
  if (reinterpret_cast<std::uintptr_t>(phdrs) == getauxval(AT_PHDR)) return r;
  std::uintptr_t bias = base_image;  // shared objects are linked at 0
  for (int i = 0; i < ehdr->e_phnum; ++i) {
    if (phdrs[i].p_type == PT_LOAD && (phdrs[i].p_flags & PF_X) != 0) {
      r.lo = bias + phdrs[i].p_vaddr;
      r.hi = r.lo + phdrs[i].p_memsz;
    }
  }
  return r;
}

// Set by configure_stacks() for the reports' walks. Atomics only to make the
// repeated, identical stores of later configurations race-free.
std::atomic<std::uintptr_t> g_self_lo{0}, g_self_hi{0};

// Frame #0 becomes the user's call site (malloc and operator new are ours);
// without a separate object it is the allocator's entry point instead.
constexpr std::size_t kMaxTrimmed = 8;

}  // namespace

void configure_stacks(const Options& o) noexcept {
  std::size_t depth = std::min<std::size_t>(o.stack_depth, stack::kMaxCapture);
  const stack::CodeRange self = compute_self_range();
  g_self_lo.store(self.lo, std::memory_order_relaxed);
  g_self_hi.store(self.hi, std::memory_order_relaxed);
  if (depth == 0) {
    stack::configure_capture(g_depot, depth, self, kMaxTrimmed);
    set_stack_capture(nullptr);
    return;
  }
  // The first configuration sizes the depot; it never moves afterwards, so
  // ids stay valid for every arena in the process. Initialised before the
  // capture is configured with it (its generation is part of the
  // configuration).
  if (!g_depot.initialized() && !g_depot.init(o.depot_size)) {
    stack::configure_capture(g_depot, 0, self, kMaxTrimmed);
    set_stack_capture(nullptr);
    return;
  }
  stack::configure_capture(g_depot, depth, self, kMaxTrimmed);
  // Without the per-thread caches every capture goes to the depot: slower,
  // same ids.
  stack::init_thread_stack_caches();
  // The depot's resident memory is guarding's too: it counts against the
  // memory budget.
  set_depot_probe(+[]() noexcept -> std::uint64_t { return g_depot.stats().bytes_used; });
  set_stack_capture(stack::capture_configured);
}

[[gnu::noinline]] std::size_t capture_program_stack(std::uintptr_t* pcs,
                                                    std::size_t max_depth) noexcept {
  // Reports are rare: trim as many of guardarena's frames as there are.
  constexpr std::size_t kMaxTrimmedInReport = 64;
  const stack::CodeRange self{g_self_lo.load(std::memory_order_relaxed),
                              g_self_hi.load(std::memory_order_relaxed)};
  std::uint64_t hash = 0;
  const auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::size_t n = 0;
  if (const std::uintptr_t entry = stack::t_allocator_entry; entry > fp) {
    n = stack::walk_trimmed(entry, stack::stack_top_of(entry), pcs, max_depth, 0, self,
                            kMaxTrimmedInReport, &hash, nullptr);
  } else {
    n = stack::capture_trimmed(pcs, max_depth, 0, self, kMaxTrimmedInReport, &hash);
  }
  asm volatile("" ::: "memory");  // no tail call: the walks read this frame
  return n;
}

std::uint32_t capture_stack(std::size_t skip) noexcept {
  const std::uint32_t id = stack::capture_configured(skip + 1);
  asm volatile("" ::: "memory");  // no tail call: `skip + 1` counts this frame
  return id;
}

std::size_t load_stack(std::uint32_t id, std::uintptr_t* out, std::size_t max) noexcept {
  return g_depot.initialized() ? g_depot.load(id, out, max) : 0;
}

stack::StackDepotStats depot_stats() noexcept {
  return g_depot.stats();
}

}  // namespace guardarena::report
