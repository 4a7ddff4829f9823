// os/world_stop.h: other threads pause, their registers are recorded as the
// kernel saved them, and they go on after resume(); threads that cannot take
// the signal are counted, not waited for.
#include "os/world_stop.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

namespace guardarena::os {
namespace {

constexpr std::uintptr_t kMagic = 0x6a61726d61676963ull;

// Spins with `value` in a callee-saved register (x86-64 r12, AArch64 x19)
// until *stop is non-zero, counting rounds in *rounds.
void spin_holding(std::uintptr_t value, const std::atomic<int>* stop,
                  std::atomic<std::uint64_t>* rounds) {
#if defined(__x86_64__)
  __asm__ volatile(
      "mov %[value], %%r12\n\t"
      "1: lock incq %[rounds]\n\t"
      "pause\n\t"
      "cmpl $0, %[stop]\n\t"
      "je 1b\n\t"
      : [rounds] "+m"(*rounds)
      : [value] "r"(value), [stop] "m"(*stop)
      : "r12", "memory", "cc");
#elif defined(__aarch64__)
  __asm__ volatile(
      "mov x19, %[value]\n\t"
      "1: ldaxr x9, [%[rounds]]\n\t"
      "add x9, x9, #1\n\t"
      "stlxr w10, x9, [%[rounds]]\n\t"
      "cbnz w10, 1b\n\t"
      "yield\n\t"
      "ldr w9, [%[stop]]\n\t"
      "cbz w9, 1b\n\t"
      :
      : [value] "r"(value), [stop] "r"(stop), [rounds] "r"(rounds)
      : "x9", "x10", "x19", "memory", "cc");
#else
  (void)value;
  while (stop->load() == 0) rounds->fetch_add(1);
#endif
}

// Threads of this process but the calling one, from /proc.
std::size_t other_threads() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n - 1;
}

// TSan delivers an asynchronous signal to a thread only when that thread
// next enters one of its interceptors: a thread spinning in assembly never
// takes the pause signal there.
#if defined(__SANITIZE_THREAD__)
#define SKIP_WHERE_SIGNALS_ARE_DEFERRED() \
  GTEST_SKIP()                            \
      << "TSan defers asynchronous signals to its interceptors; spinning threads never pause"
#else
#define SKIP_WHERE_SIGNALS_ARE_DEFERRED() static_cast<void>(0)
#endif

bool holds(const PausedThread& t, std::uintptr_t value) {
  for (std::uint32_t i = 0; i < t.words; ++i) {
    if (t.regs[i] == value) return true;
  }
  return false;
}

bool any_holds(const WorldStop& world, std::uintptr_t value) {
  for (std::size_t i = 0; i < world.paused(); ++i) {
    if (holds(world.thread(i), value)) return true;
  }
  return false;
}

// A thread in spin_holding(value) from construction (once it has counted a
// round) to destruction.
class Spinner {
 public:
  explicit Spinner(std::uintptr_t value) : thread_(spin_holding, value, &stop_, &rounds_) {
    while (rounds_.load() == 0) std::this_thread::yield();
  }
  ~Spinner() {
    stop_ = 1;
    thread_.join();
  }
  Spinner(const Spinner&) = delete;
  Spinner& operator=(const Spinner&) = delete;
  std::uint64_t rounds() const { return rounds_.load(); }
  // Whether it counts rounds again within a generous bound (a loaded machine
  // may not schedule it for a while).
  bool goes_on_from(std::uint64_t rounds) const {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (rounds_.load() == rounds && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    return rounds_.load() != rounds;
  }
  std::thread& thread() { return thread_; }

 private:
  std::atomic<int> stop_{0};
  std::atomic<std::uint64_t> rounds_{0};
  std::thread thread_;
};

// A thread that blocks every signal, from construction to finish(), which
// drains the instances of `sig` left pending on it and returns how many.
class SignalBlocker {
 public:
  SignalBlocker()
      : thread_([this] {
          sigset_t all;
          sigfillset(&all);
          pthread_sigmask(SIG_BLOCK, &all, nullptr);
          blocked_ = true;
          while (stop_.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          sigset_t only;
          sigemptyset(&only);
          sigaddset(&only, drain_.load());
          const timespec now{0, 0};
          int n = 0;
          while (drain_.load() != 0 && sigtimedwait(&only, nullptr, &now) == drain_.load()) ++n;
          drained_ = n;
        }) {
    while (!blocked_.load()) std::this_thread::yield();
  }
  ~SignalBlocker() { finish(0); }
  SignalBlocker(const SignalBlocker&) = delete;
  SignalBlocker& operator=(const SignalBlocker&) = delete;
  int finish(int sig) {
    if (thread_.joinable()) {
      drain_ = sig;
      stop_ = 1;
      thread_.join();
    }
    return drained_.load();
  }

 private:
  std::atomic<int> stop_{0};
  std::atomic<int> drain_{0};
  std::atomic<bool> blocked_{false};
  std::atomic<int> drained_{0};
  std::thread thread_;
};

TEST(WorldStopTest, PausesOtherThreadsAndRecordsTheirRegisters) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  constexpr int kThreads = 3;
  const std::size_t helpers = other_threads();  // a sanitizer's or an emulator's
  std::vector<std::unique_ptr<Spinner>> spinners;
  for (int i = 0; i < kThreads; ++i) spinners.push_back(std::make_unique<Spinner>(kMagic + i));

  WorldStop world;
  world.stop();
  ASSERT_TRUE(world.stopped());
  EXPECT_GE(world.paused(), static_cast<std::size_t>(kThreads));
  EXPECT_EQ(world.paused() + world.missed(), kThreads + helpers);
  std::uint64_t at_stop[kThreads];
  for (int i = 0; i < kThreads; ++i) at_stop[i] = spinners[i]->rounds();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(spinners[i]->rounds(), at_stop[i]) << "thread " << i;
  for (std::size_t t = 0; t < world.paused(); ++t) {
    EXPECT_NE(world.thread(t).tid, static_cast<std::uint32_t>(::syscall(SYS_gettid)));
    EXPECT_NE(world.thread(t).sp, 0u);
  }
  for (int i = 0; i < kThreads; ++i) EXPECT_TRUE(any_holds(world, kMagic + i)) << "thread " << i;
  world.resume();
  EXPECT_FALSE(world.stopped());
  for (int i = 0; i < kThreads; ++i) EXPECT_TRUE(spinners[i]->goes_on_from(at_stop[i]));
}

TEST(WorldStopTest, StopsAgainAfterResume) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  const Spinner spinner(kMagic);
  for (int round = 0; round < 20; ++round) {
    WorldStop world;
    world.stop();
    ASSERT_TRUE(any_holds(world, kMagic)) << "round " << round;
  }  // the destructor resumes
}

// A thread that blocks the signal is counted as missed, not waited for, and
// never sent one: real-time signals queue, and a pending instance would
// outlive the stop. It drains what is pending on it once the stops are over.
TEST(WorldStopTest, AThreadThatBlocksTheSignalIsMissedAndNeverSentOne) {
  {
    WorldStop first;  // chooses the signal
    first.stop();
  }
  const int sig = WorldStop::signal_number();
  ASSERT_NE(sig, 0);
  SignalBlocker blocker;
  const std::size_t others = other_threads();
  for (int i = 0; i < 10; ++i) {
    WorldStop world;
    world.stop();
    EXPECT_EQ(world.paused(), 0u);
    EXPECT_EQ(world.missed(), others);
  }
  EXPECT_EQ(blocker.finish(sig), 0);
}

// Signals sent to the process during a stop wait until resume(): the paused
// threads block them all, and a handler run on the stopper could wait for a
// lock a paused thread holds.
TEST(WorldStopTest, SignalsToTheProcessWaitForResume) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  static std::atomic<int> handled{0};
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = [](int) { handled.fetch_add(1); };
  sigaction(SIGUSR1, &sa, &old);
  {
    const Spinner spinner(kMagic);
    WorldStop world;
    world.stop();
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(handled.load(), 0);
    world.resume();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (handled.load() == 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    EXPECT_EQ(handled.load(), 1);
  }
  sigaction(SIGUSR1, &old, nullptr);
}

// Every other thread of the process is either paused or missed: with none
// started here, only a sanitizer's own helper threads (TSan's, which block
// every signal) are there to count.
TEST(WorldStopTest, EveryOtherThreadIsPausedOrMissed) {
  const std::size_t others = other_threads();
  WorldStop world;
  world.stop();
  EXPECT_EQ(world.paused() + world.missed(), others);
  world.resume();
  world.resume();  // idempotent
}

// The program's own real-time signal handlers keep their signals: the pause
// takes one nobody handles. Its own process, as the choice is made once.
TEST(WorldStopTest, LeavesTheProgramsOwnSignalHandlersAlone) {
  SKIP_WHERE_SIGNALS_ARE_DEFERRED();
  EXPECT_EXIT(
      {
        static std::atomic<int> program_handler_ran{0};
        struct sigaction sa {};
        sa.sa_handler = [](int) { program_handler_ran = 1; };
        sigaction(SIGRTMAX, &sa, nullptr);
        bool paused = false;
        {
          const Spinner spinner(kMagic);
          WorldStop world;
          world.stop();
          paused = any_holds(world, kMagic);
        }
        struct sigaction now {};
        sigaction(SIGRTMAX, nullptr, &now);
        const bool kept = now.sa_handler == sa.sa_handler && program_handler_ran == 0 &&
                          WorldStop::signal_number() != SIGRTMAX &&
                          WorldStop::signal_number() >= SIGRTMIN;
        std::_Exit(paused && kept ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// A signal of the pause's number sent from outside while no stop is in
// progress does nothing (the default action of a real-time signal would end
// the process).
TEST(WorldStopTest, AStraySignalOutsideAStopIsIgnored) {
  WorldStop world;
  world.stop();
  world.resume();
  const int sig = WorldStop::signal_number();
  ASSERT_NE(sig, 0);
  ASSERT_EQ(::raise(sig), 0);
  Spinner spinner(kMagic);
  ASSERT_EQ(::pthread_kill(spinner.thread().native_handle(), sig), 0);
  // The spinning thread took it and goes on.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(spinner.goes_on_from(spinner.rounds()));
}

}  // namespace
}  // namespace guardarena::os
