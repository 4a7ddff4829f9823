// Tests for stack capture: frame-pointer walks from ordinary code, threads and
// signal contexts, termination on bogus frame pointers, and the libgcc
// unwinder. Helpers are noinline so that each is a real frame.
#include "stack/stack_trace.h"

#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

namespace guardarena::stack {
namespace {

constexpr std::size_t kDepth = 64;

struct Captured {
  std::uintptr_t pcs[kDepth] = {};
  std::size_t n = 0;
  std::uintptr_t ra_inner = 0;  // return address out of the innermost helper
  std::uintptr_t ra_middle = 0;
};

std::uintptr_t ra_of(void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

[[gnu::noinline]] void capture_inner(Captured* c, std::size_t skip, Unwinder unwinder) {
  c->n = capture(c->pcs, kDepth, skip, unwinder);
  c->ra_inner = ra_of(__builtin_return_address(0));
  asm volatile("" ::: "memory");  // keep the call above from becoming a tail call
}

[[gnu::noinline]] void capture_middle(Captured* c, std::size_t skip, Unwinder unwinder) {
  capture_inner(c, skip, unwinder);
  c->ra_middle = ra_of(__builtin_return_address(0));
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void capture_plain(Captured* c) {
  c->n = capture(c->pcs, kDepth, 0);
  c->ra_inner = ra_of(__builtin_return_address(0));
  asm volatile("" ::: "memory");
}

// True when pc lies within the first few KiB of fn's code.
bool inside(std::uintptr_t pc, void (*fn)(Captured*, std::size_t, Unwinder)) {
  const auto begin = reinterpret_cast<std::uintptr_t>(fn);
  return pc > begin && pc - begin < 4096;
}

TEST(StackTraceTest, FirstFrameIsTheCallerOfCapture) {
  Captured c;
  capture_middle(&c, 0, Unwinder::kFramePointer);
  ASSERT_GE(c.n, 3u);
  EXPECT_TRUE(inside(c.pcs[0], capture_inner));
  EXPECT_EQ(c.pcs[1], c.ra_inner);
  EXPECT_EQ(c.pcs[2], c.ra_middle);
}

TEST(StackTraceTest, ThreeArgumentFormWalksFramePointers) {
  Captured c;
  capture_plain(&c);
  ASSERT_GE(c.n, 2u);
  EXPECT_EQ(c.pcs[1], c.ra_inner);
}

TEST(StackTraceTest, SkipDropsInnermostFrames) {
  Captured c;
  capture_middle(&c, 1, Unwinder::kFramePointer);
  ASSERT_GE(c.n, 2u);
  EXPECT_EQ(c.pcs[0], c.ra_inner);
  EXPECT_EQ(c.pcs[1], c.ra_middle);
}

TEST(StackTraceTest, RespectsMaxDepthAndNullArguments) {
  std::uintptr_t pcs[4] = {};
  EXPECT_EQ(capture(pcs, 2, 0), 2u);
  EXPECT_EQ(pcs[2], 0u);
  EXPECT_EQ(capture(pcs, 0, 0), 0u);
  EXPECT_EQ(capture(nullptr, 4, 0), 0u);
}

[[gnu::noinline]] std::size_t recurse(int depth, std::uintptr_t* pcs, std::size_t max) {
  if (depth == 0) return capture(pcs, max, 0);
  const std::size_t n = recurse(depth - 1, pcs, max);
  asm volatile("" ::: "memory");
  return n;
}

// The walk ends by itself (at the outermost frame or at the first frame
// without a frame pointer, such as GoogleTest's own code) well before the
// buffer is full, and returns only plausible pcs.
TEST(StackTraceTest, WalkEndsByItself) {
  std::uintptr_t pcs[kMaxDepth] = {};
  const std::size_t n = recurse(5, pcs, kMaxDepth);
  EXPECT_GE(n, 6u);
  EXPECT_LT(n, kMaxDepth);
  for (std::size_t i = 0; i < n; ++i) EXPECT_GE(pcs[i], 4096u) << i;
}

TEST(StackTraceTest, FollowsDeepRecursion) {
  std::uintptr_t pcs[kMaxDepth] = {};
  EXPECT_GE(recurse(100, pcs, kMaxDepth), 101u);
}

TEST(StackTraceTest, WorksOnOtherThreads) {
  Captured c;
  std::thread t([&c] { capture_middle(&c, 0, Unwinder::kFramePointer); });
  t.join();
  ASSERT_GE(c.n, 3u);
  EXPECT_EQ(c.pcs[1], c.ra_inner);
  EXPECT_EQ(c.pcs[2], c.ra_middle);
}

TEST(StackTraceTest, LibgccUnwinderMatchesFramePointers) {
  Captured c;
  capture_middle(&c, 0, Unwinder::kLibgcc);
  ASSERT_GE(c.n, 3u);
  EXPECT_TRUE(inside(c.pcs[0], capture_inner));
  EXPECT_EQ(c.pcs[1], c.ra_inner);
  EXPECT_EQ(c.pcs[2], c.ra_middle);
}

TEST(StackTraceTest, LibgccUnwinderHonoursSkip) {
  Captured c;
  capture_middle(&c, 1, Unwinder::kLibgcc);
  ASSERT_GE(c.n, 2u);
  EXPECT_EQ(c.pcs[0], c.ra_inner);
}

#if defined(__x86_64__)
// Calls fn with rbp set to `fp`, as code compiled without frame pointers may
// leave it: fn's frame record then links to garbage.
extern "C" void guardarena_test_call_with_rbp(void (*fn)(), std::uintptr_t fp);
asm(R"(
  .text
  .globl guardarena_test_call_with_rbp
  .type guardarena_test_call_with_rbp, @function
guardarena_test_call_with_rbp:
  push %rbp
  mov %rsi, %rbp
  call *%rdi
  pop %rbp
  ret
  .size guardarena_test_call_with_rbp, .-guardarena_test_call_with_rbp
)");

Captured g_bad_rbp;

[[gnu::noinline]] void capture_under_bad_rbp() {
  g_bad_rbp.n = capture(g_bad_rbp.pcs, kDepth, 0);
  asm volatile("" ::: "memory");
}

class BadFramePointerTest : public ::testing::TestWithParam<std::uintptr_t> {};

// Stands for "2 MiB above the current frame" (a step no real frame takes).
constexpr std::uintptr_t kFarAbove = 1;

TEST_P(BadFramePointerTest, StopsWithoutCrashing) {
  g_bad_rbp = Captured{};
  std::uintptr_t fp = GetParam();
  if (fp == kFarAbove)
    fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) + (2u << 20);
  guardarena_test_call_with_rbp(capture_under_bad_rbp, fp);
  // Into capture_under_bad_rbp, into the trampoline, then the garbage link.
  EXPECT_EQ(g_bad_rbp.n, 2u);
}

// Null, misaligned, the zero page, the top of the address space, far above.
INSTANTIATE_TEST_SUITE_P(Garbage, BadFramePointerTest,
                         ::testing::Values(std::uintptr_t{0}, std::uintptr_t{0xdeadbeef},
                                           std::uintptr_t{16}, ~std::uintptr_t{0xf}, kFarAbove));

TEST(BadFramePointerEdgeTest, BelowTheCurrentFrameIsRejected) {
  g_bad_rbp = Captured{};
  std::uintptr_t below[4] = {};
  guardarena_test_call_with_rbp(capture_under_bad_rbp,
                                reinterpret_cast<std::uintptr_t>(&below[0]) - 4096);
  EXPECT_EQ(g_bad_rbp.n, 2u);
}

[[gnu::noinline]] void libgcc_capture_under_bad_rbp() {
  g_bad_rbp.n = capture(g_bad_rbp.pcs, kDepth, 0, Unwinder::kLibgcc);
  asm volatile("" ::: "memory");
}

TEST(BadFramePointerEdgeTest, LibgccUnwinderSurvivesIt) {
  g_bad_rbp = Captured{};
  // The trampoline has no unwind info: libgcc stops there.
  guardarena_test_call_with_rbp(libgcc_capture_under_bad_rbp, 0xdeadbeef);
  EXPECT_GE(g_bad_rbp.n, 1u);
}
#endif

// --- capture_from_context -------------------------------------------------

// The context must be captured and walked while its frames are live.
[[gnu::noinline]] std::size_t context_helper(std::uintptr_t* pcs, std::size_t max,
                                             std::uintptr_t* ra) {
  ucontext_t uc;
  getcontext(&uc);
  *ra = ra_of(__builtin_return_address(0));
  const std::size_t n = capture_from_context(&uc, pcs, max);
  asm volatile("" ::: "memory");
  return n;
}

TEST(CaptureFromContextTest, StartsAtThePcThenWalksTheFramePointers) {
  std::uintptr_t ra = 0;
  std::uintptr_t pcs[kDepth] = {};
  const std::size_t n = context_helper(pcs, kDepth, &ra);
  ASSERT_GE(n, 2u);
  const auto begin = reinterpret_cast<std::uintptr_t>(&context_helper);
  EXPECT_GT(pcs[0], begin);
  EXPECT_LT(pcs[0] - begin, 4096u);
  EXPECT_EQ(pcs[1], ra);
}

TEST(CaptureFromContextTest, NullOrEmptyInputs) {
  std::uintptr_t pcs[4] = {};
  EXPECT_EQ(capture_from_context(nullptr, pcs, 4), 0u);
  ucontext_t uc;
  getcontext(&uc);
  EXPECT_EQ(capture_from_context(&uc, nullptr, 4), 0u);
  EXPECT_EQ(capture_from_context(&uc, pcs, 0), 0u);
  EXPECT_EQ(capture_from_context(&uc, pcs, 1), 1u);
}

#if defined(__x86_64__)
TEST(CaptureFromContextTest, UnreadableFramePointerYieldsOnlyThePc) {
  const long page = sysconf(_SC_PAGESIZE);
  void* mem = mmap(nullptr, static_cast<std::size_t>(page) * 2, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* inaccessible = static_cast<char*>(mem) + page;
  ASSERT_EQ(mprotect(inaccessible, static_cast<std::size_t>(page), PROT_NONE), 0);
  ucontext_t uc;
  getcontext(&uc);
  uc.uc_mcontext.gregs[REG_RSP] = reinterpret_cast<greg_t>(inaccessible - 64);
  uc.uc_mcontext.gregs[REG_RBP] = reinterpret_cast<greg_t>(inaccessible);
  std::uintptr_t pcs[8] = {};
  EXPECT_EQ(capture_from_context(&uc, pcs, 8), 1u);
  munmap(mem, static_cast<std::size_t>(page) * 2);
}
#endif

// A real fault: the handler captures from its context on a sigaltstack and
// jumps back out.
sigjmp_buf g_jump;
std::uintptr_t g_fault_pcs[kDepth];
std::size_t g_fault_n = 0;
Unwinder g_fault_unwinder = Unwinder::kFramePointer;

void on_segv(int, siginfo_t*, void* ctx) {
  g_fault_n = capture_from_context(static_cast<const ucontext_t*>(ctx), g_fault_pcs, kDepth,
                                   g_fault_unwinder);
  siglongjmp(g_jump, 1);
}

[[gnu::noinline]] void opaque() {
  asm volatile("" ::: "memory");
}

// The calls on both sides keep the frame set up at the faulting load.
[[gnu::noinline]] int faulting_read_in_frame(volatile int* p, std::uintptr_t* ra) {
  *ra = ra_of(__builtin_return_address(0));
  opaque();
  const int v = *p;
  opaque();
  return v;
}

// A leaf: GCC tears the frame down before the load, as in memcpy-like code.
[[gnu::noinline]] int faulting_read_leaf(volatile int* p, std::uintptr_t* ra) {
  *ra = ra_of(__builtin_return_address(0));
  // The store must happen before the faulting load (AArch64 compilers sink
  // it past the volatile load otherwise); an empty asm is no call, so the
  // function stays a leaf.
  asm volatile("" ::: "memory");
  return *p;
}

class SegvCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    guard_ = mmap(nullptr, page_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(guard_, MAP_FAILED);
    stack_t ss{};
    ss.ss_sp = alt_stack_;
    ss.ss_size = sizeof(alt_stack_);
    ASSERT_EQ(sigaltstack(&ss, &old_ss_), 0);
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGSEGV, &sa, &old_sa_), 0);
    g_fault_n = 0;
  }
  void TearDown() override {
    sigaction(SIGSEGV, &old_sa_, nullptr);
    sigaltstack(&old_ss_, nullptr);
    munmap(guard_, page_);
  }

  // Runs fn on the guard page under the handler; returns fn's return address.
  std::uintptr_t fault_in(int (*fn)(volatile int*, std::uintptr_t*), Unwinder unwinder) {
    // Static: a local modified after sigsetjmp is indeterminate after the
    // siglongjmp.
    static std::uintptr_t ra;
    ra = 0;
    g_fault_unwinder = unwinder;
    if (sigsetjmp(g_jump, 1) == 0) fn(static_cast<volatile int*>(guard_), &ra);
    return ra;
  }

  static bool pc_inside(std::uintptr_t pc, int (*fn)(volatile int*, std::uintptr_t*)) {
    const auto begin = reinterpret_cast<std::uintptr_t>(fn);
    return pc >= begin && pc - begin < 4096;
  }

  alignas(16) static inline char alt_stack_[64 * 1024];
  std::size_t page_ = 0;
  void* guard_ = nullptr;
  stack_t old_ss_{};
  struct sigaction old_sa_ {};
};

TEST_F(SegvCaptureTest, FramePointerWalkFromTheFaultContext) {
  const std::uintptr_t ra = fault_in(faulting_read_in_frame, Unwinder::kFramePointer);
  ASSERT_GE(g_fault_n, 2u);
  EXPECT_TRUE(pc_inside(g_fault_pcs[0], faulting_read_in_frame));
  EXPECT_EQ(g_fault_pcs[1], ra);
}

TEST_F(SegvCaptureTest, LibgccUnwindsThroughTheSignalFrame) {
  const std::uintptr_t ra = fault_in(faulting_read_in_frame, Unwinder::kLibgcc);
  ASSERT_GE(g_fault_n, 3u);
  EXPECT_TRUE(pc_inside(g_fault_pcs[0], faulting_read_in_frame));
  EXPECT_EQ(g_fault_pcs[1], ra);
}

TEST_F(SegvCaptureTest, LibgccFindsTheCallerOfAFramelessLeaf) {
  const std::uintptr_t ra = fault_in(faulting_read_leaf, Unwinder::kLibgcc);
  ASSERT_GE(g_fault_n, 3u);
  EXPECT_TRUE(pc_inside(g_fault_pcs[0], faulting_read_leaf));
  EXPECT_EQ(g_fault_pcs[1], ra);
}

TEST_F(SegvCaptureTest, FramePointerWalkSurvivesAFramelessLeaf) {
  fault_in(faulting_read_leaf, Unwinder::kFramePointer);
  ASSERT_GE(g_fault_n, 1u);
  EXPECT_TRUE(pc_inside(g_fault_pcs[0], faulting_read_leaf));
}

}  // namespace
}  // namespace guardarena::stack
