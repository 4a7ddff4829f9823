// Frame-pointer and libgcc stack capture, and the lock-free stack depot. Runs
// inside malloc/free and the fault handler: no malloc, no blocking locks, and
// every frame pointer is checked before it is dereferenced. The fault path
// reads frames through process_vm_readv so that even a smashed stack cannot
// make the handler fault.
#include "stack/stack_trace.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <unwind.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

#include "os/os_linux.h"

// The stack pointer at process entry (exported by ld.so / libc.a): every frame
// of the main thread lies below it, and the memory from there down to the
// current stack pointer is mapped.
extern "C" void* __libc_stack_end;

namespace guardarena::stack {
namespace {

// A frame record sits in its own frame, so consecutive records are at most one
// frame apart. Real frames above 1 MiB are pathological (huge alloca / VLA);
// the rule mostly catches rbp used as a general register by code compiled
// without frame pointers.
constexpr std::uintptr_t kMaxFrameStep = std::uintptr_t{1} << 20;
// The largest stack for which a "top of stack" guess is trusted.
constexpr std::uintptr_t kMaxStackSize = std::uintptr_t{1} << 30;
// Anything below this is not code (the zero page and friends).
constexpr std::uintptr_t kMinCodeAddress = 4096;

// The highest address of the stack that holds `sp`, or UINTPTR_MAX when the
// stack is not one glibc told us about (fibers, sigaltstack, foreign threads).
// glibc places struct pthread at the top of every thread stack it creates (or
// that the user supplied), so for non-main threads pthread_self() bounds the
// stack from above. Two loads, no syscalls, correct after fork().
std::uintptr_t stack_top(std::uintptr_t sp, std::uintptr_t self) noexcept {
  if (sp < self && self - sp <= kMaxStackSize) return self;
  const auto main_top = reinterpret_cast<std::uintptr_t>(__libc_stack_end);
  if (sp < main_top && main_top - sp <= kMaxStackSize) return main_top;
  return UINTPTR_MAX;
}

std::uintptr_t stack_top(std::uintptr_t sp) noexcept {
  return stack_top(sp, reinterpret_cast<std::uintptr_t>(pthread_self()));
}

// A frame record is two words: the caller's frame pointer, then the return
// address into the caller. The layout is the same on x86-64 and AArch64.
struct FrameRecord {
  std::uintptr_t next_fp;
  std::uintptr_t return_address;
};

bool plausible_record(std::uintptr_t fp, std::uintptr_t low, std::uintptr_t top) noexcept {
  if (fp == 0 || (fp & (sizeof(std::uintptr_t) - 1)) != 0) return false;
  if (fp < low) return false;
  return top == UINTPTR_MAX || (fp < top && top - fp >= sizeof(FrameRecord));
}

// The walk shared by capture() and capture_from_context(). `read` fetches one
// frame record and may refuse (false). Inlined into each public entry so that
// the starting frame pointer is the entry's own frame.
template <typename ReadRecord>
[[gnu::always_inline]] inline std::size_t walk_frames(std::uintptr_t fp, std::uintptr_t low,
                                                      std::uintptr_t top, std::uintptr_t* pcs,
                                                      std::size_t n, std::size_t max_depth,
                                                      std::size_t skip, ReadRecord read) noexcept {
  while (n < max_depth && plausible_record(fp, low, top)) {
    FrameRecord record;
    if (!read(fp, &record)) break;
    if (record.return_address < kMinCodeAddress) break;
    if (skip > 0) {
      --skip;
    } else {
      pcs[n++] = record.return_address;
    }
    // The chain must go up the stack (frames are pushed downward), by a sane
    // amount: this is what keeps a garbage rbp from being followed.
    if (record.next_fp <= fp || record.next_fp - fp > kMaxFrameStep) break;
    fp = record.next_fp;
  }
  return n;
}

bool read_record_direct(std::uintptr_t fp, FrameRecord* out) noexcept {
  // NOLINTNEXTLINE(performance-no-int-to-ptr): frame pointers are integers here.
  std::memcpy(out, reinterpret_cast<const void*>(fp), sizeof(*out));
  return true;
}

// Reads a frame record without risking a fault: the kernel copies it and
// answers EFAULT for unmapped memory. Reading one's own memory is always
// permitted (same thread group). If the syscall is unavailable (seccomp,
// ENOSYS), falls back to a direct read; the bounds checks still apply.
bool read_record_checked(std::uintptr_t fp, FrameRecord* out) noexcept {
  iovec local{out, sizeof(*out)};
  // NOLINTNEXTLINE(performance-no-int-to-ptr): frame pointers are integers here.
  iovec remote{reinterpret_cast<void*>(fp), sizeof(*out)};
  const int saved_errno = errno;
  const long copied = ::syscall(SYS_process_vm_readv, ::getpid(), &local, 1UL, &remote, 1UL, 0UL);
  const int err = errno;
  errno = saved_errno;
  if (copied == static_cast<long>(sizeof(*out))) return true;
  if (copied < 0 && (err == ENOSYS || err == EPERM)) return read_record_direct(fp, out);
  return false;
}

struct LibgccState {
  std::uintptr_t* pcs;
  std::size_t max_depth;
  std::size_t skip;
  std::size_t n;
};

_Unwind_Reason_Code libgcc_callback(_Unwind_Context* context, void* arg) noexcept {
  auto* state = static_cast<LibgccState*>(arg);
  const std::uintptr_t pc = _Unwind_GetIP(context);
  if (pc < kMinCodeAddress) return _URC_END_OF_STACK;
  if (state->skip > 0) {
    --state->skip;
    return _URC_NO_REASON;
  }
  state->pcs[state->n++] = pc;
  return state->n >= state->max_depth ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// Looks for the kernel's signal frame whose pc is the interrupted one, and
// records it and its callers. libgcc marks the interrupted frame's pc as
// exact (ip_before_insn) rather than as a return address, which is what
// distinguishes it from a return address that happens to be equal.
struct SignalFrameSearch {
  std::uintptr_t* pcs;
  std::size_t max_depth;
  std::uintptr_t interrupted_pc;
  std::size_t n;
  bool found;
};

_Unwind_Reason_Code signal_frame_callback(_Unwind_Context* context, void* arg) noexcept {
  auto* search = static_cast<SignalFrameSearch*>(arg);
  int before_insn = 0;
  const std::uintptr_t pc = _Unwind_GetIPInfo(context, &before_insn);
  if (!search->found) {
    if (before_insn == 0 || pc != search->interrupted_pc) return _URC_NO_REASON;
    search->found = true;
  } else if (pc < kMinCodeAddress) {
    return _URC_END_OF_STACK;
  }
  search->pcs[search->n++] = pc;
  return search->n >= search->max_depth ? _URC_END_OF_STACK : _URC_NO_REASON;
}

}  // namespace

[[gnu::noinline]] std::size_t capture(std::uintptr_t* pcs, std::size_t max_depth,
                                      std::size_t skip) noexcept {
  if (pcs == nullptr || max_depth == 0) return 0;
  const auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  return walk_frames(fp, fp, stack_top(fp), pcs, 0, max_depth, skip, read_record_direct);
}

[[gnu::noinline]] std::size_t capture(std::uintptr_t* pcs, std::size_t max_depth, std::size_t skip,
                                      Unwinder unwinder) noexcept {
  if (pcs == nullptr || max_depth == 0) return 0;
  if (unwinder == Unwinder::kLibgcc) {
    // The first frame libgcc reports is this function itself.
    LibgccState state{pcs, max_depth, skip + 1, 0};
    _Unwind_Backtrace(libgcc_callback, &state);
    if (state.n > 0) return state.n;
  }
  const auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  return walk_frames(fp, fp, stack_top(fp), pcs, 0, max_depth, skip, read_record_direct);
}

std::size_t walk_trimmed(std::uintptr_t fp, std::uintptr_t top, std::uintptr_t* pcs,
                         std::size_t max_depth, std::size_t skip, CodeRange trim,
                         std::size_t max_trim, std::uint64_t* hash, WalkTrail* trail) noexcept {
  StackHash h;
  std::size_t n = 0;
  std::uint32_t steps = 0;
  // The next_fp values after the last record read that the walk would have
  // followed; stays empty unless that word ended the walk.
  std::uintptr_t follow_lo = 1, follow_hi = 0;
  if (trail != nullptr) trail->start = fp;
  if (pcs != nullptr && max_depth > 0) {
    // walk_frames() with trimming and hashing folded in: one pass, and the
    // hash's multiply chain overlaps the walk's chain of dependent loads.
    const std::uintptr_t low = fp;
    while (n < max_depth && plausible_record(fp, low, top)) {
      FrameRecord record;
      read_record_direct(fp, &record);
      if (trail != nullptr && steps < WalkTrail::kMaxSteps)
        trail->step[steps] = {record.next_fp, record.return_address};
      ++steps;
      const std::uintptr_t pc = record.return_address;
      if (pc < kMinCodeAddress) break;
      if (skip > 0) {
        --skip;
      } else if (max_trim > 0 && trim.contains(pc)) {
        --max_trim;
      } else {
        max_trim = 0;
        pcs[n++] = pc;
        h.add(pc);
      }
      if (n == max_depth) break;  // the loop test would end it before next_fp counts
      if (record.next_fp <= fp || record.next_fp - fp > kMaxFrameStep ||
          !plausible_record(record.next_fp, low, top)) {
        // Followed exactly when above fp by at most kMaxFrameStep (the step
        // rule) and plausible_record() (8-aligned, a whole record below top;
        // fp is at least `low`).
        const std::uintptr_t reach = fp + kMaxFrameStep;
        const std::uintptr_t below_top =
            top == UINTPTR_MAX ? UINTPTR_MAX : top - sizeof(FrameRecord);
        follow_lo = fp + 1;
        follow_hi = reach < below_top ? reach : below_top;
        break;
      }
      fp = record.next_fp;
    }
  }
  if (trail != nullptr) {
    trail->steps = steps <= WalkTrail::kMaxSteps ? steps : 0;
    trail->follow_lo = follow_lo;
    trail->follow_hi = follow_hi;
  }
  if (hash != nullptr) *hash = h.finish(n);
  return n;
}

std::uintptr_t stack_top_of(std::uintptr_t sp) noexcept {
  return stack_top(sp);
}

std::uintptr_t stack_top_of(std::uintptr_t sp, std::uintptr_t self) noexcept {
  return stack_top(sp, self);
}

[[gnu::noinline]] std::size_t capture_trimmed(std::uintptr_t* pcs, std::size_t max_depth,
                                              std::size_t skip, CodeRange trim,
                                              std::size_t max_trim, std::uint64_t* hash) noexcept {
  const auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  return walk_trimmed(fp, stack_top(fp), pcs, max_depth, skip, trim, max_trim, hash, nullptr);
}

std::size_t capture_from_context(const ucontext_t* uc, std::uintptr_t* pcs, std::size_t max_depth,
                                 Unwinder unwinder) noexcept {
  if (uc == nullptr || pcs == nullptr || max_depth == 0) return 0;
#if defined(__x86_64__)
  const auto pc = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  const auto fp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]);
  const auto sp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  const auto pc = static_cast<std::uintptr_t>(uc->uc_mcontext.pc);
  const auto fp = static_cast<std::uintptr_t>(uc->uc_mcontext.regs[29]);
  const auto sp = static_cast<std::uintptr_t>(uc->uc_mcontext.sp);
#else
  (void)unwinder;
  return 0;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
  if (unwinder == Unwinder::kLibgcc) {
    SignalFrameSearch search{pcs, max_depth, pc, 0, false};
    _Unwind_Backtrace(signal_frame_callback, &search);
    // Only the interrupted pc means libgcc could not go past it; the frame
    // pointers may know more.
    if (search.n > 1) return search.n;
  }
  std::size_t n = 0;
  pcs[n++] = pc;
  // Frame records of the interrupted code lie above its stack pointer; the
  // signal handler itself runs on the same thread, so the thread's stack top
  // still applies (the handler may be on a sigaltstack, but `sp` is not).
  return walk_frames(fp, sp, stack_top(sp), pcs, n, max_depth, 0, read_record_checked);
#endif
}

// ---------------------------------------------------------------------------
// StackDepot

// An entry in the pool, followed by `size` frames. Ids are the entry's offset
// in 8-byte units plus one, so id -> entry is arithmetic and ids fit in 32 bits
// for pools up to 32 GiB.
struct StackDepot::Entry {
  std::atomic<std::uint32_t> next;  // id of the next entry in the bucket chain
  std::atomic<std::uint32_t> size;  // frame count; 0 until the entry is written
  std::uint64_t hash;

  const std::uintptr_t* frames() const noexcept {
    return reinterpret_cast<const std::uintptr_t*>(this + 1);
  }
  std::uintptr_t* frames() noexcept { return reinterpret_cast<std::uintptr_t*>(this + 1); }
};

// A global depot must work before constructors run and after destructors
// ran (malloc is called at both ends of the process).
static_assert(std::is_trivially_destructible_v<StackDepot>);
static_assert([] {
  StackDepot depot;  // constant-initializable: the constructor is constexpr
  (void)depot;
  return true;
}());

namespace {

constexpr std::size_t kEntryHeader = 16;  // sizeof(Entry)
constexpr std::size_t kUnit = 8;
constexpr std::size_t kMinCapacity = 4096;
// Ids are 32-bit offsets in 8-byte units.
constexpr std::size_t kMaxPoolBytes = (std::size_t{1} << 32) * kUnit - kUnit;
// One bucket per this many bytes of capacity: a typical stored stack (16-32
// frames) takes 150-270 bytes, so chains stay around one entry long when the
// depot is full, for 2% of the capacity spent on bucket heads.
constexpr std::size_t kBytesPerBucket = 256;

std::atomic<std::uint64_t> g_next_generation{1};

// Word by word rather than memcmp: the caller has usually just written `pcs`
// one word at a time (the walk), and a vector load spanning two of those
// stores cannot be forwarded from the store buffer; it waits for them to reach
// the cache, which cost more than the rest of a depot lookup.
bool same_frames(const std::uintptr_t* stored, const std::uintptr_t* pcs, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (stored[i] != pcs[i]) return false;
  }
  return true;
}

std::size_t round_down_pow2(std::size_t v) noexcept {
  std::size_t p = 1;
  while (p <= v / 2) p *= 2;
  return p;
}

}  // namespace

bool StackDepot::init(std::size_t capacity_bytes) noexcept {
  if (auto* hook = reset_hook.load(std::memory_order_acquire)) hook(*this);
  if (base_ != nullptr) return false;
  capacity_bytes &= ~(kUnit - 1);
  if (capacity_bytes < kMinCapacity) return false;
  const std::size_t buckets = round_down_pow2(capacity_bytes / kBytesPerBucket);
  const std::size_t table_bytes = buckets * sizeof(std::atomic<std::uint32_t>);
  std::size_t pool_bytes = capacity_bytes - table_bytes;
  if (pool_bytes > kMaxPoolBytes) pool_bytes = kMaxPoolBytes;
  pool_bytes &= ~(kUnit - 1);
  const std::size_t total = table_bytes + pool_bytes;

  void* mem = os::map_internal(total, "stack_depot");
  if (mem == nullptr) return false;
  // Fresh anonymous memory is zero: every bucket is empty (id 0) and every
  // entry's size reads 0 until written.
  base_ = static_cast<unsigned char*>(mem);
  capacity_ = total;
  buckets_ = reinterpret_cast<std::atomic<std::uint32_t>*>(base_);
  bucket_mask_ = buckets - 1;
  pool_ = base_ + table_bytes;
  pool_bytes_ = pool_bytes;
  pool_used_.store(0, std::memory_order_relaxed);
  entries_.store(0, std::memory_order_relaxed);
  drops_.store(0, std::memory_order_relaxed);
  generation_ = g_next_generation.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void StackDepot::release() noexcept {
  if (base_ == nullptr) return;
  if (auto* hook = reset_hook.load(std::memory_order_acquire)) hook(*this);
  os::release(base_, capacity_);
  base_ = nullptr;
  capacity_ = 0;
  buckets_ = nullptr;
  bucket_mask_ = 0;
  pool_ = nullptr;
  pool_bytes_ = 0;
  pool_used_.store(0, std::memory_order_relaxed);
  entries_.store(0, std::memory_order_relaxed);
  drops_.store(0, std::memory_order_relaxed);
  generation_ = 0;
}

const StackDepot::Entry* StackDepot::entry_at(std::uint32_t id) const noexcept {
  static_assert(sizeof(Entry) == kEntryHeader && alignof(Entry) <= kUnit);
  if (id == 0 || base_ == nullptr) return nullptr;
  const std::size_t offset = (static_cast<std::size_t>(id) - 1) * kUnit;
  const std::size_t used = pool_used_.load(std::memory_order_acquire);
  if (offset > used || used - offset < kEntryHeader) return nullptr;
  const auto* entry = reinterpret_cast<const Entry*>(pool_ + offset);
  const std::size_t size = entry->size.load(std::memory_order_acquire);
  if (size == 0 || size > kMaxDepth) return nullptr;
  if (used - offset - kEntryHeader < size * sizeof(std::uintptr_t)) return nullptr;
  return entry;
}

// Walks a bucket chain from `head` up to (not including) `stop` and returns the
// id of an entry equal to pcs[0..n), or 0.
std::uint32_t StackDepot::find(std::uint32_t head, std::uint32_t stop, std::uint64_t hash,
                               const std::uintptr_t* pcs, std::size_t n) const noexcept {
  // Chains are acyclic (an entry only ever points at older entries), but the
  // bound makes that independent of any bug.
  std::size_t budget = pool_bytes_ / kEntryHeader + 1;
  for (std::uint32_t id = head; id != 0 && id != stop && budget-- > 0;) {
    const Entry* entry = entry_at(id);
    if (entry == nullptr) return 0;
    if (entry->hash == hash && entry->size.load(std::memory_order_relaxed) == n &&
        same_frames(entry->frames(), pcs, n)) {
      return id;
    }
    id = entry->next.load(std::memory_order_relaxed);
  }
  return 0;
}

std::uint32_t StackDepot::store(const std::uintptr_t* pcs, std::size_t n) noexcept {
  if (base_ == nullptr || pcs == nullptr || n == 0) return 0;
  if (n > kMaxDepth) n = kMaxDepth;
  return store(pcs, n, hash_frames(pcs, n));
}

std::uint32_t StackDepot::store(const std::uintptr_t* pcs, std::size_t n,
                                std::uint64_t hash) noexcept {
  if (base_ == nullptr || pcs == nullptr || n == 0) return 0;
  if (n > kMaxDepth) {
    n = kMaxDepth;
    hash = hash_frames(pcs, n);
  }
  std::atomic<std::uint32_t>& bucket = buckets_[hash & bucket_mask_];

  // The common case: the stack is already there. Acquire pairs with the
  // release CAS that published each entry of the chain.
  std::uint32_t head = bucket.load(std::memory_order_acquire);
  if (const std::uint32_t id = find(head, 0, hash, pcs, n); id != 0) return id;

  // Reserve room with a CAS loop rather than fetch_add so that a full pool
  // stays exactly at its limit instead of being pushed past it. Acquire pairs
  // with the release of a give-back below: the bytes handed back may be the
  // ones a losing thread just wrote, and its writes must come before ours.
  const std::size_t need = kEntryHeader + n * sizeof(std::uintptr_t);
  std::size_t offset = pool_used_.load(std::memory_order_relaxed);
  do {
    if (pool_bytes_ - offset < need) {
      drops_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
  } while (!pool_used_.compare_exchange_weak(offset, offset + need, std::memory_order_acquire,
                                             std::memory_order_relaxed));

  auto* entry = reinterpret_cast<Entry*>(pool_ + offset);
  std::memcpy(entry->frames(), pcs, n * sizeof(std::uintptr_t));
  entry->hash = hash;
  entry->size.store(static_cast<std::uint32_t>(n), std::memory_order_release);
  const auto id = static_cast<std::uint32_t>(offset / kUnit + 1);

  for (;;) {
    entry->next.store(head, std::memory_order_relaxed);
    const std::uint32_t seen = head;
    if (bucket.compare_exchange_weak(head, id, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      entries_.fetch_add(1, std::memory_order_relaxed);
      return id;
    }
    // Another thread linked entries into this bucket meanwhile; one of them
    // may be this very stack. Only the new part of the chain needs a look.
    if (const std::uint32_t other = find(head, seen, hash, pcs, n); other != 0) {
      // Give the reservation back if nobody reserved after it; otherwise its
      // bytes stay used but unreachable (rare: same stack, same moment).
      std::size_t expected = offset + need;
      pool_used_.compare_exchange_strong(expected, offset, std::memory_order_release,
                                         std::memory_order_relaxed);
      return other;
    }
  }
}

std::size_t StackDepot::load(std::uint32_t id, std::uintptr_t* out,
                             std::size_t max) const noexcept {
  if (out == nullptr || max == 0) return 0;
  const Entry* entry = entry_at(id);
  if (entry == nullptr) return 0;
  const std::size_t size = entry->size.load(std::memory_order_acquire);
  if (entry->hash != hash_frames(entry->frames(), size)) return 0;
  const std::size_t n = size < max ? size : max;
  std::memcpy(out, entry->frames(), n * sizeof(std::uintptr_t));
  return n;
}

StackDepotStats StackDepot::stats() const noexcept {
  StackDepotStats s;
  s.entries = entries_.load(std::memory_order_relaxed);
  s.bytes_used = base_ == nullptr ? 0
                                  : static_cast<std::size_t>(pool_ - base_) +
                                        pool_used_.load(std::memory_order_relaxed);
  s.capacity_bytes = capacity_;
  s.drops = drops_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace guardarena::stack
