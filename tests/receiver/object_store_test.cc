#include "receiver/local_object_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "tests/common/temp_dir.h"
#include "tests/receiver/object_store_contract.h"

namespace cbtd::receiver {
namespace {

// The backend-independent contract (object_store_contract.cc), on a local
// directory in the test's scratch directory.
using testing::ObjectStoreContractTest;
INSTANTIATE_TEST_SUITE_P(
    Local, ObjectStoreContractTest,
    ::testing::Values(testing::StoreFactory{
        "Local",
        [](const std::string& scratch,
           const std::string& id) -> std::unique_ptr<ObjectStore> {
          auto store = LocalObjectStore::Open(scratch + "/v" + id, true);
          if (!store.ok()) return nullptr;
          return *std::move(store);
        }}),
    testing::FactoryName);

class LocalObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = LocalObjectStore::Open(dir_ + "/v", true);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  // On /dev/shm (memory-backed) when there is one.
  const test::TempDir tmp_{
      "cbtd-store-test-",
      std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : ""};
  const std::string dir_ = tmp_.path();
  std::unique_ptr<LocalObjectStore> store_;
};

// A crashed writer's temporary file ("<name>.tmp.XXXXXX") is never listed.
TEST_F(LocalObjectStoreTest, TempFilesOnDiskAreNeverListed) {
  ASSERT_TRUE(store_->Put("a/b/c", "one").ok());
  ASSERT_TRUE(store_->Put("a/d", "two").ok());
  std::ofstream(dir_ + "/v/a/d.tmp.ABCDEF") << "partial";
  EXPECT_EQ(*store_->List("a"), (std::vector<std::string>{"a/b/c", "a/d"}));
}

// Large unsynced objects (packs) are written with direct I/O where the
// filesystem has it (the disk's temp dir) and buffered where it does not
// (/dev/shm): either way each reads back byte for byte, at every size
// around the alignment and with parts that straddle it.
TEST(LocalObjectStoreDirectTest, LargePutUnsyncedReadsBackOnDiskAndInMemory) {
  std::vector<std::string> bases = {""};
  if (std::filesystem::is_directory("/dev/shm")) bases.push_back("/dev/shm");
  for (const std::string& base : bases) {
    const test::TempDir tmp("cbtd-direct-test-", base);
    auto store = LocalObjectStore::Open(tmp.path() + "/v", true);
    ASSERT_TRUE(store.ok()) << store.status();
    const size_t sizes[] = {1u << 20, (1u << 20) + 1, (1u << 20) + 4095,
                            (3u << 20) + 4097, (16u << 20) + 777};
    for (size_t size : sizes) {
      std::string data(size, '\0');
      for (size_t i = 0; i < size; ++i) {
        data[i] = static_cast<char>((i * 131 + size) >> 3);
      }
      // Parts of odd sizes: some end inside the aligned prefix, one
      // straddles its end, the last lies in the tail.
      std::vector<std::string_view> parts;
      for (size_t at = 0, n = 1; at < size; at += n, n = n * 7 + 3) {
        parts.push_back(std::string_view(data).substr(at, n));
      }
      const std::string key = "p/" + std::to_string(size);
      ASSERT_TRUE((*store)->PutUnsynced(key, parts).ok()) << base << key;
      ASSERT_TRUE((*store)->SyncAll().ok());
      auto back = (*store)->Get(key);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_TRUE(*back == data) << "on '" << base << "' size " << size;
      auto range = (*store)->GetRange(key, size - 5000, 5000);
      ASSERT_TRUE(range.ok()) << range.status();
      EXPECT_EQ(*range, data.substr(size - 5000)) << base << " size " << size;
    }
    EXPECT_EQ(*(*store)->RemoveTempFiles("p", INT64_MAX), 0u);
  }
}

// Large ranges (runs of a pack's records) are read with direct I/O where
// the filesystem has it: ranges at every offset around the alignment, up
// to the object's unaligned end, read back byte for byte, and one past
// the end is DATA_LOSS naming the object, not a short read.
TEST(LocalObjectStoreDirectTest, LargeRangesReadBackOnDiskAndInMemory) {
  std::vector<std::string> bases = {""};
  if (std::filesystem::is_directory("/dev/shm")) bases.push_back("/dev/shm");
  for (const std::string& base : bases) {
    const test::TempDir tmp("cbtd-direct-read-test-", base);
    auto store = LocalObjectStore::Open(tmp.path() + "/v", true);
    ASSERT_TRUE(store.ok()) << store.status();
    const size_t size = (5u << 20) + 1234;
    std::string data(size, '\0');
    for (size_t i = 0; i < size; ++i) {
      data[i] = static_cast<char>((i * 151 + 7) >> 2);
    }
    // Unsynced (as packs are written: the tail is in the page cache) and
    // synced objects alike.
    const std::string_view whole = data;
    ASSERT_TRUE((*store)->PutUnsynced("p/a", {&whole, 1}).ok());
    ASSERT_TRUE((*store)->Put("p/b", data).ok());
    for (const std::string key : {"p/a", "p/b"}) {
      std::string out = "stale bytes";  // replaced, not appended to
      for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{4095},
                              uint64_t{4096}, uint64_t{123457}}) {
        for (uint32_t length : {256u << 10, (1u << 20) + 3, 3u << 20}) {
          ASSERT_TRUE((*store)->GetRangeInto(key, offset, length, out).ok())
              << base << key << " " << offset << "+" << length;
          EXPECT_TRUE(out == data.substr(offset, length))
              << base << key << " " << offset << "+" << length;
        }
      }
      const uint32_t to_end = 1u << 20;
      ASSERT_TRUE((*store)->GetRangeInto(key, size - to_end, to_end, out).ok());
      EXPECT_TRUE(out == data.substr(size - to_end)) << base << key;
      const absl::Status past =
          (*store)->GetRangeInto(key, size - to_end + 1, to_end, out);
      EXPECT_TRUE(absl::IsDataLoss(past)) << past;
      EXPECT_THAT(std::string(past.message()),
                  ::testing::HasSubstr("truncated"));
    }
    EXPECT_TRUE(absl::IsNotFound((*store)->GetRangeInto(
        "p/none", 0, 1u << 20, *std::make_unique<std::string>())));
  }
}

TEST_F(LocalObjectStoreTest, RemoveTempFilesSparesRecentOnesAndObjects) {
  ASSERT_TRUE(store_->Put("c/aa/obj", "keep").ok());
  std::ofstream(dir_ + "/v/c/aa/x.tmp.OLD111") << "partial";
  std::ofstream(dir_ + "/v/c/aa/y.tmp.NEW222") << "partial";
  const std::string old_path = dir_ + "/v/c/aa/x.tmp.OLD111";
  std::filesystem::last_write_time(
      old_path,
      std::filesystem::file_time_type::clock::now() - std::chrono::hours(2));
  const int64_t hour_ago =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count() -
      3600 * 1000;
  auto removed = store_->RemoveTempFiles("c", hour_ago);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1u);
  EXPECT_FALSE(std::filesystem::exists(old_path));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/v/c/aa/y.tmp.NEW222"));
  EXPECT_EQ(*store_->Get("c/aa/obj"), "keep");
}

TEST(LocalObjectStoreOpenTest, MissingVaultNamesItAndHowToCreate) {
  auto s = LocalObjectStore::Open("/nonexistent/cbtd-vault", false);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              ::testing::HasSubstr("/nonexistent/cbtd-vault"));
  EXPECT_THAT(std::string(s.status().message()),
              ::testing::HasSubstr("--create"));
}

}  // namespace
}  // namespace cbtd::receiver
