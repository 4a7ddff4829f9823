// Arena: one reserved PROT_NONE span carved into chunks; each chunk holds
// slots of one class ([g][u pages][g]...) or one large block. Every block
// sits against a guard page; metadata is out of band; freed slots pass through
// a FIFO quarantine before reuse.
//
// Thread safety: all public members are thread-safe. There is no global lock
// on the hot path: each size class has its own lock, the chunk table has one
// taken only to grow, and double-free detection is a lock-free
// compare-exchange on the slot state. describe() is lock-free and
// async-signal-safe, for the fault handler.
//
// Failure: allocate() returns nullptr (never aborts) when the configured
// exhaustion policy says fail; bugs found in deallocate() are described as a
// Finding and handed to the reporter hook (core/hooks.h), which does not
// return.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/fallback.h"
#include "core/finding.h"
#include "core/metadata.h"
#include "options/options.h"

namespace guardarena {

struct ArenaStats {
  std::uint64_t live_blocks = 0;
  std::uint64_t live_bytes = 0;
  std::uint64_t peak_live_blocks = 0;
  std::uint64_t peak_live_bytes = 0;
  std::uint64_t guarded_allocations = 0;   // total, since creation or release()
  std::uint64_t fallback_allocations = 0;  // total unguarded (exhaustion)
  std::uint64_t fallback_live = 0;
  std::uint64_t failed_allocations = 0;  // nullptr returned (on_exhaustion=fail)
  std::uint64_t quarantined_blocks = 0;
  std::uint64_t quarantined_bytes = 0;
  std::uint64_t vmas_in_use = 0;  // mprotect backend: estimated mappings for live blocks
  std::uint64_t reserved_bytes = 0;
  std::uint64_t syscalls = 0;  // made by this arena
  const char* backend = "";
  // The memory budget (core/memory_budget.h): this arena's limit (0 = none)
  // and where it came from ("option", "cgroup", "physical", "none"); the
  // resident bytes guarding adds in the whole process, now and at peak.
  std::uint64_t memory_budget = 0;
  const char* memory_budget_source = "";
  std::uint64_t guarded_resident_bytes = 0;
  std::uint64_t peak_guarded_resident_bytes = 0;
  // Blocks served unguarded because a limit (memory or mapping budget) was
  // reached, and the rate in force: one new allocation in N is guarded.
  std::uint64_t unguarded_at_limit = 0;
  std::uint64_t guard_sample_rate = 1;
};

// What an address inside the arena is, for reports. Filled by describe().
struct AddressInfo {
  ErrorKind kind = ErrorKind::kWildAccess;
  bool has_block = false;
  std::uintptr_t block = 0;  // user pointer of the nearest block
  std::uint64_t size = 0;
  std::uint64_t align = 0;
  std::int64_t distance = 0;  // address - block (negative: before it)
  SlotState state = SlotState::kUnused;
  std::uint8_t alloc_kind = 0;
  std::uint32_t alloc_stack = 0, free_stack = 0, alloc_tid = 0, free_tid = 0;
};

// Why Arena::create() refused; arena_error_message() words it for users.
enum class ArenaError : std::uint8_t {
  kNone,
  kBackendUnavailable,  // backend=guard on a kernel without MADV_GUARD_INSTALL
  kNoAddressSpace,      // the reservation failed even at its smallest size
  kNoMetadata,          // the metadata mappings failed
  kRegistryFull,        // 256 arenas are alive already
};
const char* arena_error_message(ArenaError e) noexcept;

class Arena {
 public:
  virtual ~Arena() = default;

  // Creates an arena in `storage` (at least storage_size() bytes, aligned to
  // 64) with the backend chosen by options.backend. Returns nullptr and sets
  // `*error` (when not null) when no backend can be used, no address space
  // or metadata can be mapped, or the registry of arenas is full.
  static Arena* create(void* storage, const Options& options, FallbackAllocator fallback,
                       ArenaError* error) noexcept;
  static std::size_t storage_size() noexcept;

  // A block of `size` bytes aligned to `align` (power of two), or nullptr with
  // the exhaustion policy applied. Zeroed when `zero` (calloc). errno is left
  // as it was when a block is returned (malloc's contract; the os layer keeps
  // it across system calls), so callers need not save it.
  virtual void* allocate(std::size_t size, std::size_t align, AllocKind kind,
                         bool zero) noexcept = 0;

  enum class FreeResult { kFreed, kNotOurs };
  // Frees `p`. `size`/`align` of 0 mean "unknown" (free()); otherwise they are
  // checked against the allocation (sized delete, pmr). Reports and aborts on
  // double free, interior pointer, kind/size mismatch and canary damage.
  // kNotOurs: `p` is neither in the reservation nor a fallback block. Leaves
  // errno as it was.
  virtual FreeResult deallocate(void* p, std::size_t size, std::size_t align,
                                AllocKind kind) noexcept = 0;

  // True when `p` is inside the reservation (one range check).
  bool owns(const void* p) const noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    return a - base_ < span_;
  }
  // The reservation owns() checks against.
  std::uintptr_t reservation_base() const noexcept { return base_; }
  std::uintptr_t reservation_size() const noexcept { return span_; }
  // True for pointers this arena handed out, guarded or fallback.
  virtual bool owns_block(const void* p) const noexcept = 0;

  // Requested size of a live block (malloc_usable_size), 0 if not a live block.
  virtual std::size_t usable_size(const void* p) const noexcept = 0;
  virtual bool block_info(const void* p, BlockInfo& out) const noexcept = 0;

  // Lock-free, async-signal-safe: classifies an address in the reservation.
  // false when `addr` is outside it.
  virtual bool describe(std::uintptr_t addr, AddressInfo& out) const noexcept = 0;

  // Returns every block to the arena at once (pmr release()): all pointers
  // into it become inaccessible; fallback blocks are freed.
  virtual void release_all() noexcept = 0;

  // Quarantine flush (malloc_trim).
  virtual void flush_quarantine() noexcept = 0;

  // Calls fn(block info) for each live block (leak listing). Not async-signal-safe.
  virtual void for_each_live(void (*fn)(const BlockInfo&, void*), void* ctx) const noexcept = 0;

  // Heap check: calls fn(finding) for each live block whose canaries are
  // damaged and, in fast mode, each quarantined block whose poison changed;
  // returns how many. Reads only slots and their open pages, takes no lock:
  // a block freed by another thread during the check may be misjudged, so
  // call it where the program is quiet (exit, a test's checkpoint). Cost
  // proportional to the slots in use. Not async-signal-safe.
  virtual std::size_t check_heap(void (*fn)(const Finding&, void*), void* ctx) const noexcept = 0;

  // fork(): take every internal lock before, release after (both sides).
  virtual void lock_all() noexcept = 0;
  virtual void unlock_all() noexcept = 0;

  virtual ArenaStats stats() const noexcept = 0;

  // Fast mode: gives the calling thread's cached slots and counters back to
  // this arena (thread exit, cache switching to another arena).
  virtual void absorb_thread_cache(struct ThreadCache& tc) noexcept = 0;
  // Changes on release(): thread caches filled before it are stale.
  std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_acquire); }
  // True when `a` is a registered arena whose epoch is `epoch`.
  static bool is_current(const Arena* a, std::uint64_t epoch) noexcept;
  const Options& options() const noexcept { return options_; }

  // Arenas alive in the process, for the fault handler (lock-free snapshot).
  static Arena* find_owner(std::uintptr_t addr) noexcept;

 protected:
  explicit Arena(const Options& o) noexcept : options_(o) {}
  Options options_;
  std::uintptr_t base_ = 0;
  std::uintptr_t span_ = 0;
  std::atomic<std::uint64_t> epoch_{0};
};

// Removes an arena from the fault handler's registry (its destructor does).
void unregister_arena(Arena* a) noexcept;

}  // namespace guardarena
