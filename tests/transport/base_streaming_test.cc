// The producer's bounded memory: the chunks to read kept as runs
// (ChunkJobs) and the base index read once, in order, alongside the chunks
// (BaseEntries), checked against its root before anything is committed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/block_reader.h"
#include "common/fs.h"
#include "tests/common/temp_dir.h"
#include "transport/base_entries.h"
#include "transport/chunk_jobs.h"
#include "transport/index_file.h"
#include "transport/index_source.h"
#include "transport/stream_codec.h"
#include "transport/stream_producer.h"

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;

// ---- ChunkJobs ------------------------------------------------------------

struct Job {
  uint64_t index = 0;
  bool zero_only = false;
  friend bool operator==(const Job&, const Job&) = default;
};

// The chunk-by-chunk rule ChunkJobs must agree with (stream_producer.h).
std::vector<Job> Reference(uint64_t size, uint32_t chunk, bool full,
                           const cbt::ExtentSet& changed,
                           const cbt::ExtentSet& zeroed,
                           uint64_t must_cover_from) {
  std::vector<Job> out;
  for (uint64_t i = 0; i < ChunkCount(size, chunk); ++i) {
    const cbt::Extent e{i * chunk, ChunkLength(size, chunk, i)};
    const bool in_zero = zeroed.Contains(e);
    if (full) {
      out.push_back({i, in_zero});
    } else if (changed.Intersects(e) || zeroed.Intersects(e) ||
               i >= must_cover_from) {
      out.push_back({i, in_zero && !changed.Intersects(e)});
    }
  }
  return out;
}

cbt::ExtentSet RandomExtents(std::mt19937& rng, uint64_t size, int n) {
  cbt::ExtentSet s;
  for (int k = 0; k < n; ++k) {
    const uint64_t off = rng() % (size + 5000);  // some past the end
    s.Add(off, 1 + rng() % 20000);
  }
  return s;
}

TEST(ChunkJobsTest, AgreesWithTheChunkByChunkRule) {
  constexpr uint32_t kChunk = 4096;
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    const uint64_t size = kChunk * (1 + rng() % 60) + rng() % kChunk;
    const cbt::ExtentSet changed = RandomExtents(rng, size, rng() % 6);
    const cbt::ExtentSet zeroed = RandomExtents(rng, size, rng() % 6);
    const uint64_t must = rng() % 2 ? ChunkCount(size, kChunk)
                                    : rng() % (ChunkCount(size, kChunk) + 1);
    const bool full = round % 3 == 0;
    const ChunkJobs jobs =
        full ? ChunkJobs::Full(size, kChunk, zeroed)
             : ChunkJobs::Incremental(size, kChunk, changed, zeroed, must);
    const auto want = Reference(size, kChunk, full, changed, zeroed, must);
    std::vector<Job> got;
    std::vector<uint64_t> reads;
    uint64_t last_end = 0;
    for (const ChunkJobs::Run& run : jobs.runs()) {
      ASSERT_GT(run.count, 0u);
      ASSERT_GE(run.first_index, last_end) << "ascending and disjoint";
      last_end = run.first_index + run.count;
      for (uint64_t k = 0; k < run.count; ++k) {
        got.push_back({run.first_index + k, run.zero_only});
        if (!run.zero_only) reads.push_back(run.first_index + k);
      }
    }
    ASSERT_EQ(got, want) << "round " << round;
    ASSERT_EQ(jobs.reads(), reads.size()) << "round " << round;
    for (uint64_t p = 0; p < reads.size(); ++p) {
      ASSERT_EQ(jobs.ReadIndex(p), reads[p]) << "round " << round;
    }
  }
}

TEST(ChunkJobsTest, AFullOfSixteenTebibytesIsOneRun) {
  constexpr uint64_t kSize = 16ull << 40;
  const ChunkJobs jobs = ChunkJobs::Full(kSize, 64 << 10, {});
  EXPECT_EQ(jobs.reads(), 256ull << 20);
  EXPECT_EQ(jobs.runs().size(), 1u);
  EXPECT_EQ(jobs.ReadIndex(jobs.reads() - 1), (256ull << 20) - 1);
  // With 1 GiB allocated in its middle: three runs, 16 Ki chunks to read.
  cbt::ExtentSet holes{{0, kSize}};
  holes.Remove({8ull << 40, 1ull << 30});
  const ChunkJobs sparse = ChunkJobs::Full(kSize, 64 << 10, holes);
  EXPECT_EQ(sparse.runs().size(), 3u);
  EXPECT_EQ(sparse.reads(), 16384u);
  EXPECT_EQ(sparse.ReadIndex(0), (8ull << 40) / (64 << 10));
}

// ---- the base, streamed ---------------------------------------------------

constexpr uint32_t kChunk = 4096;

// An entry that is not the hash of anything the device holds: every chunk
// the producer reads differs from the base's.
ChunkHash BaseEntry(uint64_t i) {
  std::array<uint8_t, ChunkHash::kSize> b{};
  std::memcpy(b.data(), &i, sizeof i);
  b[31] = 0xb5;
  return ChunkHash(b);
}

// A base of `count` generated entries, handed out in batches; counts what
// it delivered. `bad_root`, `stop_after`, `extra`, `fail_after` damage it.
class GeneratedBase : public IndexEntrySource {
 public:
  explicit GeneratedBase(uint64_t count) : count_(count) {
    meta_.version_id = "base";
    meta_.volume_size_bytes = count * kChunk;
    meta_.chunk_size_bytes = kChunk;
    RootHasher root(meta_.volume_size_bytes, kChunk);
    for (uint64_t i = 0; i < count; ++i) {
      const ChunkHash h = BaseEntry(i);
      root.Add({&h, 1});
    }
    meta_.root_hash = root.Finish();
  }
  const IndexMetadata& metadata() const override { return meta_; }
  absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) override {
    if (fail_after && delivered >= *fail_after) {
      return absl::UnavailableError("receiver went away");
    }
    const uint64_t end =
        std::min(stop_after.value_or(count_ + extra), count_ + extra);
    batch_.clear();
    while (batch_.size() < max && delivered < end) {
      batch_.push_back(BaseEntry(delivered++));
    }
    return std::span<const ChunkHash>(batch_);
  }

  IndexMetadata meta_;
  uint64_t delivered = 0;
  std::optional<uint64_t> stop_after;
  std::optional<uint64_t> fail_after;
  uint64_t extra = 0;

 private:
  const uint64_t count_;
  std::vector<ChunkHash> batch_;
};

// A device of any size whose chunk i holds i's bytes repeated.
class GeneratedDevice : public common::BlockReader {
 public:
  explicit GeneratedDevice(uint64_t size) : size_(size) {}
  const std::string& name() const override { return name_; }
  uint64_t SizeBytes() const override { return size_; }
  absl::Status ReadAt(uint64_t off, std::span<uint8_t> buf) override {
    for (size_t k = 0; k < buf.size(); ++k) {
      const uint64_t chunk = (off + k) / kChunk;
      buf[k] = static_cast<uint8_t>(chunk * 7 + 1 + k % 3);
    }
    return absl::OkStatus();
  }

 private:
  const uint64_t size_;
  const std::string name_ = "generated";
};

// Checks, at every chunk record, how far ahead of it the base was read.
class AheadSink : public RecordSink {
 public:
  explicit AheadSink(const GeneratedBase& base) : base_(base) {}
  absl::Status Put(const stream::Record& r) override {
    if (r.has_chunk()) {
      indices.push_back(r.chunk().chunk_index());
      max_ahead = std::max<int64_t>(
          max_ahead, static_cast<int64_t>(base_.delivered) -
                         static_cast<int64_t>(r.chunk().chunk_index()));
    }
    trailer |= r.has_trailer();
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    finished = true;
    return absl::OkStatus();
  }
  std::vector<uint64_t> indices;
  int64_t max_ahead = 0;
  bool trailer = false;
  bool finished = false;

 private:
  const GeneratedBase& base_;
};

ProducerOptions Opts() {
  ProducerOptions o;
  o.host = "h";
  o.volume = "v";
  o.version_id = "new";
  o.created_unix_ms = 1;
  return o;
}

// 2 M chunks (8 GiB at 4 KiB chunks, 64 MiB of entries): the base is read
// alongside the chunks, never more than the window ahead, and the new root
// is the base's entries with the changed chunks in place.
TEST(BaseStreamingTest, TheBaseIsReadAlongsideNotHeld) {
  constexpr uint64_t kCount = 2u << 20;
  GeneratedBase base(kCount);
  GeneratedDevice dev(kCount * kChunk);
  const std::vector<uint64_t> changed_chunks{0, 1000, kCount / 2, kCount - 1};
  cbt::ExtentSet changed;
  for (uint64_t c : changed_chunks) changed.Add(c * kChunk + 100, 1);
  AheadSink sink(base);
  auto r = ProduceStream(dev, changed, {}, &base, Opts(), sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(sink.indices, changed_chunks);
  EXPECT_TRUE(sink.finished);
  EXPECT_LE(sink.max_ahead,
            static_cast<int64_t>(kBaseWindowEntries + kIndexBatchEntries));
  RootHasher want(kCount * kChunk, kChunk);
  std::vector<uint8_t> buf(kChunk);
  for (uint64_t i = 0; i < kCount; ++i) {
    ChunkHash h = BaseEntry(i);
    if (std::binary_search(changed_chunks.begin(), changed_chunks.end(), i)) {
      ASSERT_TRUE(dev.ReadAt(i * kChunk, buf).ok());
      h = EntryOf(buf);
    }
    want.Add({&h, 1});
  }
  EXPECT_EQ(r->root_hash, want.Finish());
}

// A full of 1 TiB with 1 MiB allocated: 16 M chunks, 16 read; the holes
// go out as two zero runs without passing through the read pipeline.
TEST(BaseStreamingTest, HolesBecomeZeroRunsInBulk) {
  constexpr uint64_t kSize = 1ull << 40;
  constexpr uint32_t kBig = 64 << 10;
  GeneratedDevice dev(kSize);
  cbt::ExtentSet holes{{0, kSize}};
  holes.Remove({kSize / 2, 1 << 20});
  ProducerOptions o = Opts();
  o.chunk_size_bytes = kBig;
  VectorRecordSink sink;
  auto r = ProduceStream(dev, {}, holes, nullptr, o, sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_read, 16u);
  ASSERT_EQ(sink.records.size(), 1 + 1 + 16 + 1 + 1u);
  const uint64_t half = kSize / 2 / kBig;
  EXPECT_EQ(sink.records[1].zero_run().first_chunk_index(), 0u);
  EXPECT_EQ(sink.records[1].zero_run().chunk_count(), half);
  EXPECT_EQ(sink.records[2].chunk().chunk_index(), half);
  EXPECT_EQ(sink.records[18].zero_run().first_chunk_index(), half + 16);
  EXPECT_EQ(sink.records[18].zero_run().chunk_count(), half - 16);
  RootHasher want(kSize, kBig);
  want.AddZeros(half);
  std::vector<uint8_t> buf(kBig);
  for (uint64_t i = half; i < half + 16; ++i) {
    ASSERT_TRUE(dev.ReadAt(i * kBig, buf).ok());
    const ChunkHash h = EntryOf(buf);
    want.Add({&h, 1});
  }
  want.AddZeros(half - 16);
  EXPECT_EQ(r->root_hash, want.Finish());
}

// Discarded chunks of an incremental: a zero run only where the base did
// not already hold zeros.
TEST(BaseStreamingTest, DiscardsAreSentOnlyWhereTheBaseHadData) {
  constexpr uint64_t kCount = 40;
  VersionIndex base;
  base.version_id = "base";
  base.volume_size_bytes = kCount * kChunk;
  base.chunk_size_bytes = kChunk;
  for (uint64_t i = 0; i < kCount; ++i) {
    base.entries.push_back(i < 20 ? BaseEntry(i) : kZeroEntry);
  }
  base.root_hash =
      ComputeRootHash(base.volume_size_bytes, kChunk, base.entries);
  GeneratedDevice dev(kCount * kChunk);
  VectorRecordSink sink;
  // Chunks 15..25 discarded: 15..19 held data, 20..24 were zeros already.
  auto r =
      ProduceStream(dev, {}, {{15 * kChunk, 10 * kChunk}}, &base, Opts(), sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_read, 0u);
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(sink.records[1].zero_run().first_chunk_index(), 15u);
  EXPECT_EQ(sink.records[1].zero_run().chunk_count(), 5u);
  std::vector<ChunkHash> want = base.entries;
  std::fill(want.begin() + 15, want.begin() + 20, kZeroEntry);
  EXPECT_EQ(r->root_hash, ComputeRootHash(kCount * kChunk, kChunk, want));
}

struct Damage {
  const char* name;
  void (*apply)(GeneratedBase&);
  absl::StatusCode code;
  const char* message;
};

class DamagedBaseTest : public ::testing::TestWithParam<Damage> {};

// Whatever is wrong with the base, the stream stops before its trailer:
// the receiver commits nothing.
TEST_P(DamagedBaseTest, CommitsNothing) {
  constexpr uint64_t kCount = 100000;
  GeneratedBase base(kCount);
  GetParam().apply(base);
  GeneratedDevice dev(kCount * kChunk);
  AheadSink sink(base);
  auto r = ProduceStream(dev, {{5 * kChunk, 1}}, {}, &base, Opts(), sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), GetParam().code) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(GetParam().message));
  EXPECT_FALSE(sink.trailer);
  EXPECT_FALSE(sink.finished);
}

INSTANTIATE_TEST_SUITE_P(
    Bases, DamagedBaseTest,
    ::testing::Values(
        Damage{"WrongRoot",
               [](GeneratedBase& b) { b.meta_.root_hash = BaseEntry(9); },
               absl::StatusCode::kDataLoss,
               "base index of version base does not hash to its root hash"},
        Damage{"EndsEarly", [](GeneratedBase& b) { b.stop_after = 60000; },
               absl::StatusCode::kDataLoss, "ended after 60000 of its 100000"},
        Damage{"TooManyEntries", [](GeneratedBase& b) { b.extra = 5; },
               absl::StatusCode::kDataLoss, "holds more than its 100000"},
        Damage{"CutMidway", [](GeneratedBase& b) { b.fail_after = 70000; },
               absl::StatusCode::kUnavailable, "receiver went away"}),
    [](const auto& p) { return std::string(p.param.name); });

// Peek answers only what is loaded and below the limit; Take hands every
// entry out once, in order, zeros past the base's end.
TEST(BaseEntriesTest, PeekTakeAndFinish) {
  GeneratedBase base(100000);
  BaseEntries e(&base, 50000, kIndexBatchEntries);
  EXPECT_EQ(e.Peek(0), std::nullopt) << "nothing loaded yet";
  ASSERT_TRUE(e.Fill().ok());
  EXPECT_EQ(e.Peek(10), BaseEntry(10));
  EXPECT_EQ(e.Peek(kIndexBatchEntries), std::nullopt) << "not loaded";
  RootHasher h(100000 * kChunk, kChunk);
  ASSERT_TRUE(e.TakeUpTo(40000, h).ok());
  EXPECT_EQ(e.Peek(39999), std::nullopt) << "already taken";
  EXPECT_EQ(*e.Take(), BaseEntry(40000));
  ASSERT_TRUE(e.Fill().ok());
  EXPECT_EQ(e.Peek(49999), BaseEntry(49999));
  EXPECT_EQ(e.Peek(50000), std::nullopt) << "past the peek limit";
  ASSERT_TRUE(e.TakeUpTo(100000, h).ok());
  EXPECT_EQ(*e.Take(), kZeroEntry) << "past the base's end";
  EXPECT_TRUE(e.Finish().ok());
}

// cbtctl send --base-index streams its file: the entries as written, the
// trailing checksum checked at their end, a size that disagrees with the
// metadata refused at open.
TEST(IndexFileTest, StreamsTheEntriesAndChecksTheFileAtItsEnd) {
  const test::TempDir dir("cbtd-index-file-test-");
  VersionIndex idx;
  idx.host = "h";
  idx.volume = "v";
  idx.version_id = "v1";
  idx.chunk_size_bytes = 4096;
  idx.volume_size_bytes = 100'000ull * 4096 - 100;
  idx.entries.resize(100'000);
  for (uint64_t i = 0; i < idx.entries.size(); i += 3) {
    const std::string d = absl::StrCat("chunk ", i);
    idx.entries[i] = ChunkHash::Sha256(
        {reinterpret_cast<const uint8_t*>(d.data()), d.size()});
  }
  idx.root_hash = ComputeRootHash(idx.volume_size_bytes, 4096, idx.entries);
  const std::string encoded = EncodeIndex(idx);
  const std::string path = dir.path() + "/v1.idx";
  auto write = [&](const std::string& bytes) {
    ASSERT_TRUE(common::AtomicWriteFile(path, bytes).ok());
  };
  // All entries, in batches of at most 1000, then the end.
  auto read_all = [&]() -> absl::StatusOr<std::vector<ChunkHash>> {
    auto source = OpenIndexFile(path);
    if (!source.ok()) return source.status();
    EXPECT_EQ((*source)->metadata().root_hash, idx.root_hash);
    std::vector<ChunkHash> out;
    for (;;) {
      auto got = (*source)->Next(1000);
      if (!got.ok()) return got.status();
      if (got->empty()) return out;
      EXPECT_LE(got->size(), 1000u);
      out.insert(out.end(), got->begin(), got->end());
    }
  };
  write(encoded);
  auto entries = read_all();
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ(*entries, idx.entries);

  std::string flipped = encoded;
  flipped[flipped.size() - 1] ^= 1;
  write(flipped);
  auto bad = read_all();
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("checksum"));

  write(encoded.substr(0, encoded.size() - 1));
  auto short_file = OpenIndexFile(path);
  EXPECT_TRUE(absl::IsDataLoss(short_file.status())) << short_file.status();
  EXPECT_THAT(short_file.status().message(), ::testing::HasSubstr(path));

  write("not an index at all, just some text");
  EXPECT_TRUE(absl::IsDataLoss(OpenIndexFile(path).status()));
  EXPECT_TRUE(absl::IsNotFound(OpenIndexFile(path + ".nope").status()));
}

}  // namespace
}  // namespace cbtd::transport
