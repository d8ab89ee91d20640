#include "common/block_reader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/temp_dir.h"

namespace cbtd::common {
namespace {

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuf = std::unique_ptr<uint8_t, AlignedFree>;

AlignedBuf Aligned(size_t bytes) {
  return AlignedBuf(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
}

std::string Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Read(BlockReader& r, uint64_t off, size_t len,
                 absl::Status* status = nullptr) {
  std::vector<uint8_t> buf(len);
  absl::Status st = r.ReadAt(off, buf);
  if (status != nullptr) *status = st;
  EXPECT_TRUE(status != nullptr || st.ok()) << st;
  return std::string(buf.begin(), buf.end());
}

// A file of 2.5 MiB + 100 bytes (more than one bounce buffer, a short
// last block) under /tmp (O_DIRECT on most file systems) and under
// /dev/shm (tmpfs: buffered before Linux 6.6).
class LinuxBlockReaderTest : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    data_ = Random((5 << 19) + 100, 7);
    path_ = dir_ / "volume";
    std::ofstream(path_, std::ios::binary) << data_;
    auto r = OpenBlockReader(path_);
    ASSERT_TRUE(r.ok()) << r.status();
    reader_ = *std::move(r);
  }
  test::TempDir dir_{"cbtd-test.", GetParam()};
  std::string data_;
  std::string path_;
  std::unique_ptr<BlockReader> reader_;
};

TEST_P(LinuxBlockReaderTest, ReadsAnyRange) {
  EXPECT_EQ(reader_->name(), path_);
  EXPECT_EQ(reader_->SizeBytes(), data_.size());
  const std::pair<uint64_t, size_t> ranges[] = {
      {0, 16},           {1, 4095},
      {4096, 8192},      {4000, 300},
      {12345, 1},        {3, (2 << 20) + 5},
      {0, data_.size()}, {data_.size() - 100, 100},
      {data_.size(), 0}};
  for (const auto& [off, len] : ranges) {
    EXPECT_TRUE(Read(*reader_, off, len) == data_.substr(off, len))
        << "at " << off << ", " << len << " bytes";
  }
}

TEST_P(LinuxBlockReaderTest, AlignedReadsGoStraightIn) {
  const size_t align = reader_->Alignment();
  ASSERT_TRUE(align == 1 || align == 4096) << align;
  AlignedBuf buf = Aligned(1 << 20);
  ASSERT_TRUE(reader_->ReadAt(1 << 20, {buf.get(), 1 << 20}).ok());
  EXPECT_EQ(std::memcmp(buf.get(), data_.data() + (1 << 20), 1 << 20), 0);
}

TEST_P(LinuxBlockReaderTest, ShortLastBlockReadsOnToTheAlignmentAsZeros) {
  const size_t align = reader_->Alignment();
  const uint64_t last = data_.size() / 4096 * 4096;
  const size_t tail = data_.size() - last;
  AlignedBuf buf = Aligned(4096);
  std::memset(buf.get(), 0xAB, 4096);
  absl::Status st = reader_->ReadAt(last, {buf.get(), 4096});
  if (align == 1) {
    EXPECT_TRUE(absl::IsOutOfRange(st)) << st;
    return;
  }
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(std::memcmp(buf.get(), data_.data() + last, tail), 0);
  for (size_t i = tail; i < 4096; ++i) ASSERT_EQ(buf.get()[i], 0) << i;
}

TEST_P(LinuxBlockReaderTest, PastTheEndIsOutOfRangeAndNamesTheFile) {
  absl::Status st;
  Read(*reader_, data_.size() - 10, 4096 + 11, &st);
  EXPECT_TRUE(absl::IsOutOfRange(st)) << st;
  EXPECT_NE(st.message().find(path_), std::string::npos) << st;
  Read(*reader_, data_.size() + 1, 0, &st);
  EXPECT_TRUE(absl::IsOutOfRange(st)) << st;
}

TEST_P(LinuxBlockReaderTest, ConcurrentReads) {
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 50; ++i) {
        const uint64_t off = rng() % (data_.size() - 70000);
        const size_t len = 1 + rng() % 70000;
        std::vector<uint8_t> buf(len);
        if (!reader_->ReadAt(off, buf).ok() ||
            std::memcmp(buf.data(), data_.data() + off, len) != 0) {
          ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_P(LinuxBlockReaderTest, AsyncReadsMatchTheFile) {
  std::unique_ptr<AsyncReader> aio = reader_->NewAsyncReader(4);
  if (aio == nullptr) GTEST_SKIP() << "io_setup refused";
  const size_t chunk = 65536;
  const uint64_t offsets[] = {0, 3 * chunk, data_.size() / chunk * chunk};
  std::vector<AlignedBuf> bufs;
  for (size_t i = 0; i < 3; ++i) {
    bufs.push_back(Aligned(chunk));
    ASSERT_TRUE(aio->Submit(i, offsets[i], {bufs.back().get(), chunk}).ok());
  }
  size_t done = 0;
  while (done < 3) {
    auto got = aio->Reap(1);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const auto& c : *got) {
      ASSERT_TRUE(c.status.ok()) << c.status;
      const uint64_t off = offsets[c.tag];
      const size_t len = std::min<uint64_t>(chunk, data_.size() - off);
      EXPECT_EQ(std::memcmp(bufs[c.tag].get(), data_.data() + off, len), 0)
          << "read " << c.tag;
      ++done;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(FileSystems, LinuxBlockReaderTest,
                         testing::Values("/tmp", "/dev/shm"),
                         [](const auto& row) {
                           return std::string(row.param) == "/tmp" ? "tmp"
                                                                   : "shm";
                         });

TEST(OpenBlockReaderTest, MissingIsNotFoundAndNamesThePath) {
  auto r = OpenBlockReader("/nonexistent/cbtd-volume");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("/nonexistent/cbtd-volume"),
            std::string::npos);
}

TEST(MemoryBlockReaderTest, ReadsAndRefusesPastTheEnd) {
  MemoryBlockReader r("cow", "0123456789");
  EXPECT_EQ(r.name(), "cow");
  EXPECT_EQ(r.SizeBytes(), 10u);
  EXPECT_EQ(Read(r, 3, 4), "3456");
  absl::Status st;
  Read(r, 8, 3, &st);
  EXPECT_TRUE(absl::IsOutOfRange(st)) << st;
  EXPECT_NE(st.message().find("cow"), std::string::npos) << st;
  EXPECT_EQ(MemoryBlockReader("x").name(), "memory");
  EXPECT_EQ(r.NewAsyncReader(4), nullptr);
}

}  // namespace
}  // namespace cbtd::common
