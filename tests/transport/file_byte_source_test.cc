#include "transport/file_byte_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/fs.h"

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Reads the source to its end in pieces of `piece` bytes.
absl::StatusOr<std::string> Drain(ByteSource& src, size_t piece) {
  std::string out;
  std::vector<uint8_t> buf(piece);
  for (;;) {
    auto n = src.Read(buf);
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
}

class FileByteSourceTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(GetParam()) /
           ("cbtd-fbs-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& data) {
    const std::string path = (dir_ / "stream").string();
    std::ofstream(path, std::ios::binary) << data;
    return path;
  }
  std::filesystem::path dir_;
};

// Sizes around the block and the alignment, read in pieces that straddle
// them, come back byte for byte; on disk (direct I/O) and on tmpfs
// (refused: buffered).
TEST_P(FileByteSourceTest, ReadsEveryByteInOrder) {
  const FileSourceOptions small{.block_bytes = 64 << 10, .depth = 3};
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{65536},
        size_t{65537}, size_t{300000}, size_t{(64 << 10) * 7 + 123}}) {
    const std::string data = RandomBytes(size, static_cast<uint32_t>(size));
    const std::string path = Write(data);
    for (size_t piece : {size_t{1000}, size_t{4096}, size_t{1 << 20}}) {
      if (size > 100000 && piece < 4096) continue;  // slow, nothing new
      auto src = FileByteSource(path, small);
      ASSERT_TRUE(src.ok()) << src.status();
      auto got = Drain(**src, piece);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->size(), data.size()) << size << "/" << piece;
      EXPECT_TRUE(*got == data) << "bytes differ, size " << size;
    }
  }
}

TEST_P(FileByteSourceTest, DefaultBlocksReadALargeFile) {
  const std::string data = RandomBytes((9 << 20) + 777, 9);
  auto src = FileByteSource(Write(data));
  ASSERT_TRUE(src.ok()) << src.status();
  auto got = Drain(**src, 1 << 20);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == data);
}

INSTANTIATE_TEST_SUITE_P(OnDiskAndTmpfs, FileByteSourceTest,
                         ::testing::Values("/var/tmp", "/dev/shm"));

TEST(FileByteSourceErrors, MissingAndSpecialFilesAreNamed) {
  auto missing = FileByteSource("/nonexistent/cbtd.stream");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("/nonexistent/cbtd.stream"));
  auto dir = FileByteSource("/tmp");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
}

// A read error reaches the reader, names the file, and stays.
class FailingReader : public common::MemoryBlockReader {
 public:
  using common::MemoryBlockReader::MemoryBlockReader;
  absl::Status ReadAt(uint64_t off, std::span<uint8_t> buf) override {
    if (off >= fail_from) return absl::DataLossError("dev: bad sector");
    return common::MemoryBlockReader::ReadAt(off, buf);
  }
  uint64_t fail_from = 0;
};

TEST(FileByteSourceErrors, AReadErrorIsReturnedAfterTheGoodBytes) {
  const std::string data = RandomBytes(10 << 10, 3);
  auto dev = std::make_unique<FailingReader>(data);
  dev->fail_from = 4096;
  auto src =
      BlockReaderByteSource(std::move(dev), {.block_bytes = 4096, .depth = 2});
  std::vector<uint8_t> buf(4096);
  auto first = src->Read(buf);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 4096u);
  EXPECT_EQ(std::memcmp(buf.data(), data.data(), 4096), 0);
  auto second = src->Read(buf);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("bad sector"));
  EXPECT_FALSE(src->Read(buf).ok());
}

}  // namespace
}  // namespace cbtd::transport
