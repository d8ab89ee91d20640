#include "common/fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/unique_fd.h"
#include "tests/common/temp_dir.h"

namespace cbtd::common {
namespace {

class FsTest : public testing::Test {
 protected:
  const test::TempDir tmp_{"cbtd-fs-test.", "/tmp"};
  const std::string dir_ = tmp_.path();
};

TEST_F(FsTest, AtomicWriteReplacesContentsAndLeavesNoTemporary) {
  const std::string path = dir_ + "/state";
  ASSERT_TRUE(AtomicWriteFile(path, "old").ok());
  ASSERT_TRUE(AtomicWriteFile(path, "new contents").ok());
  auto got = ReadFile(path);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "new contents");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(FsTest, SameFileOrDeviceSeesThroughNamesNotContents) {
  const std::string a = dir_ + "/a", b = dir_ + "/b";
  ASSERT_TRUE(AtomicWriteFile(a, "same bytes").ok());
  ASSERT_TRUE(AtomicWriteFile(b, "same bytes").ok());
  ASSERT_EQ(::symlink(a.c_str(), (dir_ + "/alias").c_str()), 0);
  ASSERT_EQ(::link(a.c_str(), (dir_ + "/hard").c_str()), 0);
  EXPECT_TRUE(SameFileOrDevice(a, dir_ + "/alias"));
  EXPECT_TRUE(SameFileOrDevice(dir_ + "/hard", a));
  EXPECT_TRUE(SameFileOrDevice(dir_ + "/./a", a));
  EXPECT_FALSE(SameFileOrDevice(a, b));  // equal contents, another file
  EXPECT_FALSE(SameFileOrDevice(a, dir_ + "/missing"));
  // /dev/null is a character device: never the same as a file.
  EXPECT_FALSE(SameFileOrDevice(a, "/dev/null"));
}

// A sparse file's data ranges cover what was written and leave its holes
// out (ext4 and tmpfs both report holes at page or block granularity).
TEST_F(FsTest, FileDataRangesSkipTheHolesOfASparseFile) {
  const std::string path = dir_ + "/sparse.img";
  {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT, 0600));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::ftruncate(fd.get(), 64 << 20), 0);
    const std::string data(8192, 'x');
    for (off_t at : {off_t{1} << 20, off_t{40} << 20}) {
      ASSERT_EQ(::pwrite(fd.get(), data.data(), data.size(), at),
                static_cast<ssize_t>(data.size()));
    }
  }
  auto ranges = FileDataRanges(path);
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  uint64_t total = 0;
  for (const ByteRange& r : *ranges) total += r.length;
  // Covers both writes, and far less than the 64 MiB file.
  auto covers = [&](uint64_t at) {
    for (const ByteRange& r : *ranges) {
      if (r.offset <= at && at + 8192 <= r.offset + r.length) return true;
    }
    return false;
  };
  EXPECT_TRUE(covers(1u << 20));
  EXPECT_TRUE(covers(40u << 20));
  EXPECT_LE(total, 2u << 20) << "holes reported as data";
  // An all-hole file has no data; a directory is refused.
  const std::string empty = dir_ + "/hole.img";
  UniqueFd e(::open(empty.c_str(), O_RDWR | O_CREAT, 0600));
  ASSERT_EQ(::ftruncate(e.get(), 1 << 20), 0);
  EXPECT_TRUE(FileDataRanges(empty)->empty());
  EXPECT_TRUE(absl::IsInvalidArgument(FileDataRanges(dir_).status()));
  EXPECT_TRUE(absl::IsNotFound(FileDataRanges(dir_ + "/none").status()));
}

TEST_F(FsTest, ErrorsNameThePath) {
  auto got = ReadFile(dir_ + "/missing");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(got.status().message().find(dir_ + "/missing"), std::string::npos);
  auto w = AtomicWriteFile(dir_ + "/no/such/dir/file", "x");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.message().find("no/such/dir"), std::string::npos);
}

}  // namespace
}  // namespace cbtd::common
