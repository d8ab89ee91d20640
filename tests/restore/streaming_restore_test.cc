// RestoreFromSource in bounded memory (issue 14): the restore reads the
// version's index (and, incrementally, the base's) a window at a time, in
// two passes, and checks each whole before writing anything. A synthetic
// source of 600,000 chunks shows the window's bound; damaged, short and
// changing indexes show that nothing is written from an index that does
// not match its root hash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "restore/restore.h"
#include "tests/common/temp_dir.h"
#include "transport/index_source.h"
#include "transport/stream_index.h"

namespace cbtd::restore {
namespace {

using ::testing::HasSubstr;
using transport::IndexEntrySource;
using transport::IndexMetadata;

constexpr uint32_t kChunk = 4096;
// restore.cc's window (2 × kIndexBatchEntries) plus one batch of slack.
constexpr uint64_t kWindowBound = 3 * transport::kIndexBatchEntries;

std::string ChunkData(int pattern) {
  return std::string(kChunk, static_cast<char>('a' + pattern));
}
ChunkHash HashOf(const std::string& d) {
  return ChunkHash::Sha256(
      {reinterpret_cast<const uint8_t*>(d.data()), d.size()});
}

// A version whose chunk i holds pattern i % 5 where `data(i)`, else zeros.
VersionIndex MakeVersion(std::string id, uint64_t chunks,
                         const std::function<bool(uint64_t)>& data) {
  VersionIndex v;
  v.host = "h";
  v.volume = "vol";
  v.version_id = std::move(id);
  v.chunk_size_bytes = kChunk;
  v.volume_size_bytes = chunks * kChunk;
  v.entries.resize(chunks);
  for (uint64_t i = 0; i < chunks; ++i) {
    if (data(i)) v.entries[i] = HashOf(ChunkData(static_cast<int>(i % 5)));
  }
  v.root_hash =
      transport::ComputeRootHash(v.volume_size_bytes, kChunk, v.entries);
  return v;
}

// Counts the entries the newest opened index source handed out.
class CountingSource final : public IndexEntrySource {
 public:
  CountingSource(std::unique_ptr<IndexEntrySource> inner,
                 std::atomic<uint64_t>& delivered)
      : inner_(std::move(inner)), delivered_(delivered) {
    delivered_ = 0;
  }
  const IndexMetadata& metadata() const override { return inner_->metadata(); }
  absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) override {
    auto got = inner_->Next(max);
    if (got.ok()) delivered_ += got->size();
    return got;
  }

 private:
  std::unique_ptr<IndexEntrySource> inner_;
  std::atomic<uint64_t>& delivered_;
};

// Versions in memory; what OpenIndex serves can be swapped per call.
class FakeSource : public VersionSource {
 public:
  std::map<std::string, VersionIndex, std::less<>> versions;
  // Served from the second OpenIndex of a version on, if set.
  std::map<std::string, VersionIndex, std::less<>> reopened;
  std::map<std::string, int, std::less<>> opens;
  // Entries the newest opening of each version handed out.
  std::map<std::string, std::atomic<uint64_t>, std::less<>> delivered;

  absl::StatusOr<VersionIndex> ReadIndex(std::string_view v) override {
    return absl::UnimplementedError("a restore must stream the index");
  }
  absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndex(
      std::string_view v) override {
    auto it = versions.find(v);
    if (it == versions.end()) return absl::NotFoundError(std::string(v));
    const VersionIndex* served = &it->second;
    if (opens[std::string(v)]++ > 0) {
      if (auto r = reopened.find(v); r != reopened.end()) served = &r->second;
    }
    return std::make_unique<CountingSource>(transport::SourceOf(*served),
                                            delivered[std::string(v)]);
  }
  absl::StatusOr<std::vector<std::string>> ReadChunks(
      std::string_view, std::span<const ChunkHash> hashes) override {
    std::vector<std::string> out;
    for (const ChunkHash& h : hashes) {
      bool found = false;
      for (int p = 0; p < 5 && !found; ++p) {
        if (HashOf(ChunkData(p)) == h) {
          out.push_back(ChunkData(p));
          found = true;
        }
      }
      if (!found) return absl::NotFoundError(h.ToHex());
    }
    return out;
  }
  size_t max_batch_chunks() const override { return 64; }
};

// Checks every write against the version's entry as it happens, and that
// the indexes were read no more than a window ahead of it.
class CheckingTarget : public RestoreTarget {
 public:
  CheckingTarget(const VersionIndex& v, FakeSource& source, bool fresh)
      : v_(v), source_(source), fresh_(fresh) {}

  uint64_t SizeBytes() const override { return size_; }
  absl::Status Resize(uint64_t size) override {
    ++resizes;
    size_ = size;
    return absl::OkStatus();
  }
  absl::Status WriteAt(uint64_t offset,
                       std::span<const uint8_t> data) override {
    const uint64_t i = offset / kChunk;
    std::lock_guard l(mu_);
    for (const auto& [version, delivered] : source_.delivered) {
      max_ahead = std::max(max_ahead, delivered.load() - i);
    }
    if (transport::EntryOf(data) != v_.entries[i]) ++wrong;
    ++written[i];
    return absl::OkStatus();
  }
  absl::Status Zero(uint64_t offset, uint64_t) override {
    std::lock_guard l(mu_);
    ++zeroed[offset / kChunk];
    return absl::OkStatus();
  }
  absl::Status ReadAt(uint64_t, std::span<uint8_t>) override {
    return absl::FailedPreconditionError("not readable");
  }
  absl::Status Sync() override { return absl::OkStatus(); }
  bool fresh() const override { return fresh_; }
  void Keep() override { kept = true; }

  int resizes = 0;
  bool kept = false;
  uint64_t wrong = 0, max_ahead = 0;
  std::map<uint64_t, int> written, zeroed;

 private:
  const VersionIndex& v_;
  FakeSource& source_;
  const bool fresh_;
  uint64_t size_ = 0;
  std::mutex mu_;
};

constexpr uint64_t kChunks = 600'000;  // 2.3 GiB at 4 KiB chunks

bool EverySeventh(uint64_t i) { return i % 7 == 0; }

TEST(StreamingRestoreTest, FullRestoreWritesEveryChunkReadingAWindowAhead) {
  FakeSource source;
  source.versions["v1"] = MakeVersion("v1", kChunks, EverySeventh);
  const VersionIndex& v1 = source.versions["v1"];
  CheckingTarget target(v1, source, /*fresh=*/true);
  auto stats = RestoreFromSource(source, "v1", target, {});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->chunks, kChunks);
  const uint64_t data_chunks = (kChunks + 6) / 7;
  EXPECT_EQ(stats->chunks_written, data_chunks);
  EXPECT_EQ(stats->chunks_skipped, kChunks - data_chunks);  // holes already
  EXPECT_EQ(target.written.size(), data_chunks);
  for (const auto& [i, n] : target.written) {
    ASSERT_TRUE(EverySeventh(i) && n == 1) << "chunk " << i << " x" << n;
  }
  EXPECT_EQ(target.wrong, 0u);
  EXPECT_TRUE(target.kept);
  // Two passes: one to check the index, one to restore.
  EXPECT_EQ(source.opens["v1"], 2);
  EXPECT_LE(target.max_ahead, kWindowBound)
      << "the restore read the index further ahead than its window";
}

TEST(StreamingRestoreTest, IncrementalRestoreReadsBothIndexesInStep) {
  const test::TempDir dir("cbtd-streaming-restore-");
  FakeSource source;
  source.versions["v1"] = MakeVersion("v1", kChunks, EverySeventh);
  // v2: every 7th chunk as in v1, and every 1000th changed to zeros or data.
  source.versions["v2"] = MakeVersion("v2", kChunks, [](uint64_t i) {
    return i % 1000 == 0 ? !EverySeventh(i) : EverySeventh(i);
  });
  const VersionIndex& v1 = source.versions["v1"];
  const VersionIndex& v2 = source.versions["v2"];
  RestoreOptions opts;
  opts.from_version = "v1";
  opts.state_path = dir.path() + "/state";
  std::ofstream(opts.state_path) << nlohmann::json{
      {"host", "h"},
      {"volume", "vol"},
      {"version", "v1"},
      {"root_hash", v1.root_hash.ToHex()},
      {"state", "complete"}}.dump();
  CheckingTarget target(v2, source, /*fresh=*/false);
  auto stats = RestoreFromSource(source, "v2", target, opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  uint64_t changed_to_data = 0, changed_to_zero = 0;
  for (uint64_t i = 0; i < kChunks; i += 1000) {
    (EverySeventh(i) ? changed_to_zero : changed_to_data)++;
  }
  EXPECT_EQ(stats->chunks_written, changed_to_data);
  EXPECT_EQ(stats->chunks_zeroed, changed_to_zero);
  EXPECT_EQ(target.written.size() + target.zeroed.size(), kChunks / 1000);
  for (const auto& [i, n] : target.written) EXPECT_EQ(i % 1000, 0u) << i;
  EXPECT_EQ(target.wrong, 0u);
  EXPECT_LE(target.max_ahead, kWindowBound);
  EXPECT_THAT(*common::ReadFile(opts.state_path), HasSubstr("\"complete\""));
}

// Each way an index can be bad is found in the first pass: nothing is
// written, the target is not even resized, and no state file is left.
struct BadIndexCase {
  const char* name;
  std::function<void(VersionIndex&)> damage;
  const char* message;
};

class BadIndexTest : public ::testing::TestWithParam<BadIndexCase> {};

TEST_P(BadIndexTest, NothingIsWritten) {
  const test::TempDir dir("cbtd-streaming-restore-");
  FakeSource source;
  source.versions["v1"] = MakeVersion("v1", kChunks, EverySeventh);
  VersionIndex good = source.versions["v1"];
  GetParam().damage(source.versions["v1"]);
  CheckingTarget target(good, source, /*fresh=*/true);
  RestoreOptions opts;
  opts.state_path = dir.path() + "/state";
  auto stats = RestoreFromSource(source, "v1", target, opts);
  ASSERT_TRUE(absl::IsDataLoss(stats.status())) << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr("the index of h/vol@v1"));
  EXPECT_THAT(stats.status().message(), HasSubstr(GetParam().message));
  EXPECT_EQ(target.resizes, 0);
  EXPECT_TRUE(target.written.empty() && target.zeroed.empty());
  EXPECT_FALSE(target.kept);
  EXPECT_FALSE(std::filesystem::exists(opts.state_path));
}

INSTANTIATE_TEST_SUITE_P(
    Damage, BadIndexTest,
    ::testing::Values(
        BadIndexCase{"EntryFlipped",
                     [](VersionIndex& v) {
                       v.entries[kChunks - 3] = HashOf(ChunkData(4));
                     },
                     "does not match its root hash"},
        BadIndexCase{"Short",
                     [](VersionIndex& v) { v.entries.resize(kChunks - 1); },
                     "ends after 599999 of its 600000 entries"},
        BadIndexCase{"Long", [](VersionIndex& v) { v.entries.emplace_back(); },
                     "holds more than its 600000 entries"},
        BadIndexCase{"ChunkSizeZero",
                     [](VersionIndex& v) { v.chunk_size_bytes = 0; },
                     "chunk size of 0"}),
    [](const auto& tc) { return std::string(tc.param.name); });

TEST(StreamingRestoreTest, AnIndexThatChangesBetweenThePassesIsRefused) {
  FakeSource source;
  source.versions["v1"] = MakeVersion("v1", kChunks, EverySeventh);
  // The second opening serves other entries under another root.
  source.reopened["v1"] =
      MakeVersion("v1", kChunks, [](uint64_t i) { return i % 3 == 0; });
  CheckingTarget target(source.versions["v1"], source, true);
  auto stats = RestoreFromSource(source, "v1", target, {});
  ASSERT_TRUE(absl::IsDataLoss(stats.status())) << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr("changed while restoring"));
  EXPECT_TRUE(target.written.empty());
  EXPECT_FALSE(target.kept);
}

TEST(StreamingRestoreTest, SecondPassDamageFailsTheRestore) {
  FakeSource source;
  source.versions["v1"] = MakeVersion("v1", kChunks, EverySeventh);
  // Same metadata and root, one entry different: found at the end of the
  // second pass, after writing, so the restore fails and is not kept.
  VersionIndex bad = source.versions["v1"];
  bad.entries[kChunks - 7] = HashOf(ChunkData(1));
  source.reopened["v1"] = bad;
  CheckingTarget target(bad, source, true);
  auto stats = RestoreFromSource(source, "v1", target, {});
  ASSERT_TRUE(absl::IsDataLoss(stats.status())) << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr("does not match its root"));
  EXPECT_FALSE(target.kept);
}

}  // namespace
}  // namespace cbtd::restore
