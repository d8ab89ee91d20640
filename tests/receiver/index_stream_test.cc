#include "receiver/index_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "receiver/local_object_store.h"
#include "tests/common/temp_dir.h"

namespace cbtd::receiver {
namespace {

using ::testing::HasSubstr;
using transport::VersionIndex;

constexpr char kKey[] = "hosts/h/v/versions/x.idx";

// An index of `n` entries on 4 KiB chunks, some of them zero.
VersionIndex Sample(uint64_t n, uint32_t seed, std::string fingerprint = "") {
  std::mt19937 rng(seed);
  VersionIndex idx;
  idx.host = "h";
  idx.volume = "v";
  idx.version_id = "x";
  idx.base_version_id = "w";
  idx.chunk_size_bytes = 4096;
  idx.volume_size_bytes = n * 4096 - 100;  // a short last chunk
  idx.created_unix_ms = 1700000000000;
  idx.key_fingerprint = std::move(fingerprint);
  for (uint64_t i = 0; i < n; ++i) {
    std::array<uint8_t, ChunkHash::kSize> b;
    for (auto& c : b) c = static_cast<uint8_t>(rng());
    idx.entries.push_back(i % 5 == 3 ? transport::kZeroEntry : ChunkHash(b));
  }
  idx.root_hash = transport::ComputeRootHash(idx.volume_size_bytes,
                                             idx.chunk_size_bytes, idx.entries);
  idx.stats.chunk_records = n / 2;
  idx.stats.new_objects = 7;
  return idx;
}

class IndexStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = LocalObjectStore::Open(tmp_.path() + "/v", true);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }

  // Reads `key` through an IndexReader taking `step` entries at a time:
  // the index it held, or the first error (of Open, Next or Finish).
  absl::StatusOr<VersionIndex> ReadAll(const std::string& key,
                                       size_t step = kIndexBlockEntries) {
    auto r = IndexReader::Open(*store_, key);
    if (!r.ok()) return r.status();
    VersionIndex out;
    static_cast<IndexMetadata&>(out) = (*r)->metadata();
    for (;;) {
      auto got = (*r)->Next(step);
      if (!got.ok()) return got.status();
      if (got->empty()) break;
      out.entries.insert(out.entries.end(), got->begin(), got->end());
    }
    if (absl::Status s = (*r)->Finish(); !s.ok()) return s;
    return out;
  }

  // Files under the vault directory (temporary ones included).
  std::vector<std::string> Files() {
    std::vector<std::string> out;
    for (auto& e :
         std::filesystem::recursive_directory_iterator(tmp_.path() + "/v")) {
      if (e.is_regular_file()) out.push_back(e.path().filename().string());
    }
    return out;
  }

  const test::TempDir tmp_{
      "cbtd-index-stream-test-",
      std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : ""};
  std::unique_ptr<LocalObjectStore> store_;
};

void ExpectSame(const VersionIndex& a, const VersionIndex& b) {
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.volume, b.volume);
  EXPECT_EQ(a.version_id, b.version_id);
  EXPECT_EQ(a.base_version_id, b.base_version_id);
  EXPECT_EQ(a.volume_size_bytes, b.volume_size_bytes);
  EXPECT_EQ(a.chunk_size_bytes, b.chunk_size_bytes);
  EXPECT_EQ(a.created_unix_ms, b.created_unix_ms);
  EXPECT_EQ(a.root_hash, b.root_hash);
  EXPECT_EQ(a.key_fingerprint, b.key_fingerprint);
  EXPECT_EQ(a.stats.chunk_records, b.stats.chunk_records);
  EXPECT_EQ(a.stats.new_objects, b.stats.new_objects);
  EXPECT_TRUE(a.entries == b.entries);
}

TEST_F(IndexStreamTest, ReaderGivesWhatDecodeIndexGives) {
  // One entry, less than a block, exactly a block, and several blocks;
  // read in steps that do and do not divide the block.
  for (uint64_t n : {uint64_t{1}, uint64_t{1000}, uint64_t{kIndexBlockEntries},
                     uint64_t{2 * kIndexBlockEntries + 17}}) {
    for (size_t step : {size_t{1}, size_t{999}, kIndexBlockEntries}) {
      if (n > 1000 && step == 1) continue;  // slow, and says nothing more
      SCOPED_TRACE(::testing::Message() << n << " entries, step " << step);
      const std::string enc = transport::EncodeIndex(
          Sample(n, 7, n == 1000 ? "0123456789abcdef" : ""));
      ASSERT_TRUE(store_->Put(kKey, enc).ok());
      auto decoded = transport::DecodeIndex(enc, kKey);
      ASSERT_TRUE(decoded.ok()) << decoded.status();
      auto streamed = ReadAll(kKey, step);
      ASSERT_TRUE(streamed.ok()) << streamed.status();
      ExpectSame(*streamed, *decoded);
      ASSERT_TRUE(store_->Delete(kKey).ok());
    }
  }
}

TEST_F(IndexStreamTest, AnyFlippedByteIsDataLossNamingTheObject) {
  const std::string enc = transport::EncodeIndex(Sample(40, 3));
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x20;
    ASSERT_TRUE(store_->Put(kKey, bad).ok());
    auto back = ReadAll(kKey, 3);
    ASSERT_FALSE(back.ok()) << "flip at " << i;
    EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss)
        << "flip at " << i << ": " << back.status();
    EXPECT_THAT(std::string(back.status().message()), HasSubstr(kKey));
  }
}

// A flip in the entries is caught by Finish even when every entry was
// already handed out: the documented "unverified until Finish".
TEST_F(IndexStreamTest, DamagedEntriesAreReportedByFinish) {
  std::string enc = transport::EncodeIndex(Sample(3 * kIndexBlockEntries, 5));
  enc[enc.size() - 100] ^= 1;  // the last block's entries
  ASSERT_TRUE(store_->Put(kKey, enc).ok());
  auto r = IndexReader::Open(*store_, kKey);
  ASSERT_TRUE(r.ok()) << r.status();
  uint64_t seen = 0;
  for (;;) {
    auto got = (*r)->Next();
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->empty()) break;
    seen += got->size();
  }
  EXPECT_EQ(seen, 3 * kIndexBlockEntries);
  const absl::Status s = (*r)->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("checksum mismatch"));
}

TEST_F(IndexStreamTest, TruncatedOrExtendedIsDataLossAtOpen) {
  const std::string enc = transport::EncodeIndex(Sample(40, 3));
  for (size_t n = 0; n < enc.size(); n += 5) {
    ASSERT_TRUE(store_->Put(kKey, enc.substr(0, n)).ok());
    auto r = IndexReader::Open(*store_, kKey);
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << n;
  }
  ASSERT_TRUE(store_->Put(kKey, enc + "x").ok());
  EXPECT_EQ(IndexReader::Open(*store_, kKey).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(IndexStreamTest, HostileMetadataLengthIsRefusedWithoutReadingIt) {
  std::string enc = transport::EncodeIndex(Sample(4, 3));
  enc[8] = enc[9] = enc[10] = enc[11] = '\xff';  // json_len 4 GiB - 1
  ASSERT_TRUE(store_->Put(kKey, enc).ok());
  auto r = IndexReader::Open(*store_, kKey);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
}

// A receive's base may be pruned while the session reads it.
TEST_F(IndexStreamTest, ReaderKeepsReadingAnIndexDeletedUnderIt) {
  const VersionIndex idx = Sample(3 * kIndexBlockEntries, 4);
  ASSERT_TRUE(store_->Put(kKey, transport::EncodeIndex(idx)).ok());
  auto r = IndexReader::Open(*store_, kKey);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(store_->Delete(kKey).ok());
  uint64_t seen = 0;
  for (;;) {
    auto got = (*r)->Next();
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->empty()) break;
    seen += got->size();
  }
  EXPECT_EQ(seen, idx.entries.size());
  EXPECT_TRUE((*r)->Finish().ok());
}

TEST_F(IndexStreamTest, MissingIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(IndexReader::Open(*store_, kKey).status()));
}

// Writes `idx` through an IndexWriter in pieces of `step` entries, zero
// runs through AppendZeros.
absl::Status WriteAll(ObjectStore& store, const VersionIndex& idx,
                      size_t step) {
  auto w = IndexWriter::Create(store, kKey, idx);
  if (!w.ok()) return w.status();
  std::span<const ChunkHash> all(idx.entries);
  for (size_t i = 0; i < all.size();) {
    if (transport::IsZeroEntry(all[i])) {
      if (auto s = (*w)->AppendZeros(1); !s.ok()) return s;
      ++i;
      continue;
    }
    const size_t n = std::min(step, all.size() - i);
    if (auto s = (*w)->Append(all.subspan(i, n)); !s.ok()) return s;
    i += n;
  }
  auto root = (*w)->Finish();
  if (!root.ok()) return root.status();
  EXPECT_EQ(*root, idx.root_hash);
  return (*w)->Publish(idx.stats);
}

TEST_F(IndexStreamTest, WriterIsByteIdenticalToEncodeIndex) {
  for (uint64_t n :
       {uint64_t{1}, uint64_t{1000}, uint64_t{2 * kIndexBlockEntries + 17}}) {
    SCOPED_TRACE(n);
    const VersionIndex idx = Sample(n, 9, n == 1 ? "0123456789abcdef" : "");
    ASSERT_TRUE(WriteAll(*store_, idx, 777).ok());
    EXPECT_TRUE(*store_->Get(kKey) == transport::EncodeIndex(idx));
    ASSERT_TRUE(store_->Delete(kKey).ok());
  }
}

TEST_F(IndexStreamTest, NothingIsVisibleBeforePublishAndNothingLeftOnAbort) {
  const VersionIndex idx = Sample(3 * kIndexBlockEntries, 2);
  {
    auto w = IndexWriter::Create(*store_, kKey, idx);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Append(idx.entries).ok());
    ASSERT_TRUE((*w)->Finish().ok());
    EXPECT_FALSE(*store_->Exists(kKey));
    EXPECT_TRUE(store_->List("")->empty());
  }  // destroyed unpublished: an abort
  EXPECT_FALSE(*store_->Exists(kKey));
  EXPECT_TRUE(Files().empty()) << ::testing::PrintToString(Files());
}

TEST_F(IndexStreamTest, PublishNeverReplacesAnExistingVersion) {
  const VersionIndex idx = Sample(10, 2);
  ASSERT_TRUE(store_->Put(kKey, "someone else's").ok());
  const absl::Status s = WriteAll(*store_, idx, 4);
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(*store_->Get(kKey), "someone else's");
  EXPECT_EQ(Files().size(), 1u) << "temporary files left";
}

TEST_F(IndexStreamTest, WriterRefusesTooManyOrTooFewEntries) {
  const VersionIndex idx = Sample(10, 2);
  auto w = IndexWriter::Create(*store_, kKey, idx);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append(std::span(idx.entries).first(9)).ok());
  EXPECT_EQ((*w)->Finish().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*w)->AppendZeros(2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*w)->Publish({}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(*store_->Exists(kKey));
}

TEST_F(IndexStreamTest, ObjectWriterReadsBackWhatItWrote) {
  auto w = store_->OpenWriter("a/b");
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append("hello ").ok());
  ASSERT_TRUE((*w)->Append("world").ok());
  EXPECT_EQ((*w)->size_bytes(), 11u);
  EXPECT_EQ(*(*w)->ReadBack(3, 5), "lo wo");
  EXPECT_EQ((*w)->ReadBack(8, 4).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(*store_->Exists("a/b"));
  ASSERT_TRUE((*w)->Publish().ok());
  EXPECT_EQ(*store_->Get("a/b"), "hello world");
  EXPECT_EQ(Files().size(), 1u) << "temporary files left";
}

}  // namespace
}  // namespace cbtd::receiver
