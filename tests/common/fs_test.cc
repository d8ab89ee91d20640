#include "common/fs.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

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
