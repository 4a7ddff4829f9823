// The process's memory limit, read from a fake root laid out like a system
// with cgroup v2 (at /sys/fs/cgroup or /sys/fs/cgroup/unified) or v1
// (/sys/fs/cgroup/memory): the tightest limit from the process's cgroup up,
// "max" and values above physical memory counting as none.
#include "os/memory_limit.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace guardarena::os {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kPhysical = 16ull << 30;

class MemoryLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/guardarena-memlimit-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    root_ = templ;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void write(const std::string& path, const std::string& text) {
    const fs::path p = root_ / path.substr(1);
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  MemoryLimit limit() const { return memory_limit(root_.c_str(), kPhysical); }
  fs::path root_;
};

TEST(ParseCgroupLimitTest, NumbersAreBytesAndMaxOrGarbageIsNoLimit) {
  EXPECT_EQ(parse_cgroup_limit("2147483648\n", 11), 2147483648u);
  EXPECT_EQ(parse_cgroup_limit("4096", 4), 4096u);
  EXPECT_EQ(parse_cgroup_limit("max\n", 4), 0u);
  EXPECT_EQ(parse_cgroup_limit("", 0), 0u);
  EXPECT_EQ(parse_cgroup_limit("12k\n", 4), 0u);
  EXPECT_EQ(parse_cgroup_limit("99999999999999999999999\n", 24), 0u);
}

TEST_F(MemoryLimitTest, WithoutCgroupFilesItIsPhysicalMemory) {
  const MemoryLimit l = limit();
  EXPECT_EQ(l.bytes, kPhysical);
  EXPECT_EQ(l.source, MemoryLimitSource::kPhysical);
}

TEST_F(MemoryLimitTest, CgroupV2TakesTheTightestLimitOnTheWayUp) {
  write("/proc/self/cgroup", "0::/app/worker\n");
  write("/sys/fs/cgroup/app/worker/memory.max", "max\n");
  write("/sys/fs/cgroup/app/memory.max", "2147483648\n");
  const MemoryLimit l = limit();
  EXPECT_EQ(l.bytes, 2ull << 30);
  EXPECT_EQ(l.source, MemoryLimitSource::kCgroup);
  write("/sys/fs/cgroup/app/worker/memory.max", "1073741824\n");
  EXPECT_EQ(limit().bytes, 1ull << 30);
}

TEST_F(MemoryLimitTest, CgroupV2UnderTheHybridUnifiedMount) {
  write("/proc/self/cgroup", "1:name=systemd:/\n0::/svc\n");
  write("/sys/fs/cgroup/unified/svc/memory.max", "536870912\n");
  EXPECT_EQ(limit().bytes, 512ull << 20);
}

TEST_F(MemoryLimitTest, CgroupV2RootNamespaceReadsTheMountPoint) {
  // Inside a container's cgroup namespace the process sits at "/": its
  // limit file is at the mount point itself.
  write("/proc/self/cgroup", "0::/\n");
  write("/sys/fs/cgroup/memory.max", "3221225472\n");
  EXPECT_EQ(limit().bytes, 3ull << 30);
}

TEST_F(MemoryLimitTest, CgroupV1MemoryControllerLine) {
  write("/proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/jobs/one\n0::/\n");
  write("/sys/fs/cgroup/memory/jobs/one/memory.limit_in_bytes", "9223372036854771712\n");
  write("/sys/fs/cgroup/memory/jobs/memory.limit_in_bytes", "805306368\n");
  const MemoryLimit l = limit();
  EXPECT_EQ(l.bytes, 768ull << 20);
  EXPECT_EQ(l.source, MemoryLimitSource::kCgroup);
}

TEST_F(MemoryLimitTest, ALimitAbovePhysicalMemoryIsNone) {
  // cgroup v1's "unlimited" is a huge number.
  write("/proc/self/cgroup", "4:memory:/\n");
  write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  const MemoryLimit l = limit();
  EXPECT_EQ(l.bytes, kPhysical);
  EXPECT_EQ(l.source, MemoryLimitSource::kPhysical);
}

TEST_F(MemoryLimitTest, OtherControllersAreIgnored) {
  write("/proc/self/cgroup", "3:cpuset:/a\n");
  write("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "1048576\n");
  EXPECT_EQ(limit().source, MemoryLimitSource::kPhysical);
}

TEST(PhysicalMemoryTest, IsAtLeastOnePage) {
  EXPECT_GT(physical_memory(), 0u);
}

}  // namespace
}  // namespace guardarena::os
