#include "common/block_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/common/temp_dir.h"

namespace cbtd::common {
namespace {

constexpr long kTmpfsMagic = 0x01021994;

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

// Whether the file system under `path` takes O_DIRECT (tmpfs does since
// Linux 6.6).
bool TakesDirect(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  UniqueFd owned(fd);
  return fd >= 0;
}

TEST(OpenBlockDeviceTest, RegularFileSize) {
  test::TempDir dir;
  WriteFile(dir / "img", std::string(5000, 'x'));
  auto d = OpenBlockDevice(dir / "img", O_RDONLY);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->fd.valid());
  EXPECT_EQ(d->size_bytes, 5000u);
  EXPECT_FALSE(d->is_block_device);
  EXPECT_FALSE(d->direct) << "O_DIRECT was not asked for";
}

TEST(OpenBlockDeviceTest, ErrorsNameThePath) {
  test::TempDir dir;
  auto missing = OpenBlockDevice(dir / "missing", O_RDONLY | O_DIRECT);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find(dir / "missing"), std::string::npos)
      << missing.status();

  auto directory = OpenBlockDevice(dir.path(), O_RDONLY);
  ASSERT_FALSE(directory.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(directory.status()))
      << directory.status();
  EXPECT_NE(directory.status().message().find(dir.path()), std::string::npos);
  EXPECT_NE(directory.status().message().find("neither"), std::string::npos);

  auto chardev = OpenBlockDevice("/dev/null", O_RDONLY);
  ASSERT_FALSE(chardev.ok());
  EXPECT_NE(chardev.status().message().find("/dev/null"), std::string::npos);
}

TEST(OpenBlockDeviceTest, FallsBackFromODirectOnTmpfs) {
  struct statfs fs {};
  if (::statfs("/dev/shm", &fs) != 0 || fs.f_type != kTmpfsMagic) {
    GTEST_SKIP() << "no tmpfs at /dev/shm";
  }
  test::TempDir dir("cbtd-test.", "/dev/shm");
  WriteFile(dir / "img", "hello");
  auto d = OpenBlockDevice(dir / "img", O_RDONLY | O_DIRECT);
  ASSERT_TRUE(d.ok()) << d.status();
  // Before Linux 6.6 tmpfs refuses O_DIRECT and the opener falls back.
  EXPECT_EQ(d->direct, TakesDirect(dir / "img"));
  EXPECT_EQ(d->size_bytes, 5u);
  char buf[5];
  ASSERT_EQ(::pread(d->fd.get(), buf, 5, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST(OpenBlockDeviceTest, FallsBackWhereODirectIsRefused) {
  // procfs refuses O_DIRECT on every kernel.
  ASSERT_FALSE(TakesDirect("/proc/self/stat"));
  auto d = OpenBlockDevice("/proc/self/stat", O_RDONLY | O_DIRECT);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->direct);
  EXPECT_TRUE(d->fd.valid());
  char buf[16];
  EXPECT_GT(::read(d->fd.get(), buf, sizeof(buf)), 0);
}

TEST(OpenBlockDeviceTest, DirectWhereTheFileSystemTakesIt) {
  test::TempDir dir;
  WriteFile(dir / "img", std::string(8192, 'x'));
  if (!TakesDirect(dir / "img")) GTEST_SKIP() << "no O_DIRECT under /tmp";
  auto d = OpenBlockDevice(dir / "img", O_RDONLY | O_DIRECT);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->direct);
  EXPECT_NE(::fcntl(d->fd.get(), F_GETFL) & O_DIRECT, 0);
}

TEST(OpenBlockDeviceTest, CreatesAFreshFile) {
  test::TempDir dir;
  auto d = OpenBlockDevice(dir / "new", O_RDWR | O_CREAT | O_EXCL, 0640);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size_bytes, 0u);
  EXPECT_FALSE(OpenBlockDevice(dir / "new", O_RDWR | O_CREAT | O_EXCL).ok());
  EXPECT_NE(::fcntl(d->fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

}  // namespace
}  // namespace cbtd::common
