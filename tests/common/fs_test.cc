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
