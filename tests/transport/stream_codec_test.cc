#include "transport/stream_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "transport/extent_list.h"
#include "transport/stream_producer.h"

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;

std::vector<stream::Record> SampleRecords() {
  std::vector<stream::Record> r(5);
  auto* h = r[0].mutable_header();
  h->set_format_version(kStreamFormatVersion);
  h->set_source_host("host");
  h->set_volume_id("vol");
  h->set_volume_size_bytes(1 << 20);
  h->set_chunk_size_bytes(65536);
  h->set_base_version_id("a");
  h->set_base_root_hash(std::string(32, 'r'));
  h->set_new_version_id("b");
  r[0].set_required(true);
  auto* c = r[1].mutable_chunk();
  c->set_chunk_index(3);
  c->set_hash(std::string(32, 'h'));
  c->set_payload(std::string(200000, 'p'));  // multi-byte varint length
  c->set_payload_xxh3(7);
  r[2].mutable_chunk_ref()->set_chunk_index(4);
  r[2].mutable_chunk_ref()->set_hash(std::string(32, 'k'));
  r[3].mutable_zero_run()->set_first_chunk_index(5);
  r[3].mutable_zero_run()->set_chunk_count(2);
  r[4].mutable_trailer()->set_chunk_records(1);
  r[4].mutable_trailer()->set_root_hash(std::string(32, 't'));
  return r;
}

absl::StatusOr<std::vector<stream::Record>> ReadAll(
    std::string framed, uint64_t* skipped = nullptr) {
  StreamReader reader(StringByteSource(std::move(framed)));
  std::vector<stream::Record> out;
  for (;;) {
    auto r = reader.Next();
    if (!r.ok()) return r.status();
    if (!r->has_value()) break;
    out.push_back(**r);
  }
  if (skipped) *skipped = reader.skipped_records();
  return out;
}

TEST(StreamCodecTest, RoundTripsEveryRecordType) {
  const auto records = SampleRecords();
  auto back = ReadAll(FrameRecords(records));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ((*back)[i].SerializeAsString(), records[i].SerializeAsString())
        << "record " << i;
  }
}

TEST(StreamCodecTest, EmptyInputIsAnEmptyStream) {
  auto back = ReadAll("");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

TEST(StreamCodecTest, TruncationAtEveryByteIsAClearError) {
  const std::string framed = FrameRecords(SampleRecords());
  // Record boundaries are valid ends; everything else must say truncated.
  std::set<size_t> boundaries = {0};
  std::string acc;
  for (const auto& r : SampleRecords()) {
    AppendFramed(r, acc);
    boundaries.insert(acc.size());
  }
  for (size_t cut = 0; cut < framed.size(); cut += (cut < 300 ? 1 : 997)) {
    auto back = ReadAll(framed.substr(0, cut));
    if (boundaries.contains(cut)) {
      EXPECT_TRUE(back.ok()) << "cut at boundary " << cut;
    } else {
      ASSERT_FALSE(back.ok()) << "cut at " << cut;
      EXPECT_THAT(std::string(back.status().message()), HasSubstr("truncated"));
    }
  }
}

// Hands out the bytes a few at a time, as a pipe or socket may.
class TrickleSource : public ByteSource {
 public:
  explicit TrickleSource(std::string data) : data_(std::move(data)) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> buf) override {
    const size_t n =
        std::min({buf.size(), data_.size() - pos_, 1 + step_++ % 7});
    std::memcpy(buf.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
  size_t step_ = 0;
};

// The reader reads ahead: records that straddle its buffer, one larger
// than the buffer, and a source that returns a few bytes per read all
// come back whole; a cut names the byte where the input ended.
TEST(StreamCodecTest, ReadAheadAcrossRecordsSmallReadsAndLargeRecords) {
  std::vector<stream::Record> records;
  std::mt19937 rng(3);
  for (int i = 0; i < 40; ++i) {
    auto& r = records.emplace_back();
    r.mutable_chunk()->set_chunk_index(i);
    // 1.5 MiB once (larger than the read-ahead), else up to 100 KiB.
    std::string payload(i == 17 ? (3u << 19) : rng() % 100000, '\0');
    for (char& c : payload) c = static_cast<char>(rng());
    r.mutable_chunk()->set_payload(std::move(payload));
  }
  const std::string framed = FrameRecords(records);
  ASSERT_GT(framed.size(), 3u << 20);
  for (const bool trickle : {false, true}) {
    StreamReader reader(trickle ? std::make_unique<TrickleSource>(framed)
                                : StringByteSource(framed));
    for (size_t i = 0; i < records.size(); ++i) {
      auto r = reader.Next();
      ASSERT_TRUE(r.ok() && r->has_value()) << "record " << i;
      EXPECT_EQ((*r)->SerializeAsString(), records[i].SerializeAsString())
          << "record " << i << (trickle ? " trickled" : "");
    }
    auto end = reader.Next();
    ASSERT_TRUE(end.ok());
    EXPECT_FALSE(end->has_value());
    EXPECT_EQ(reader.offset(), framed.size());
  }
  const size_t cut = framed.size() - 12345;
  StreamReader reader(StringByteSource(framed.substr(0, cut)));
  absl::Status failed;
  for (;;) {
    auto r = reader.Next();
    if (!r.ok()) {
      failed = r.status();
      break;
    }
    ASSERT_TRUE(r->has_value()) << "a cut stream ended cleanly";
  }
  EXPECT_THAT(std::string(failed.message()),
              HasSubstr(absl::StrCat("truncated at byte ", cut, ":")));
}

TEST(StreamCodecTest, OversizeLengthRefused) {
  std::string framed = "\xff\xff\xff\xff\x0f";  // 2^32 - 1
  auto back = ReadAll(framed);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(std::string(back.status().message()),
              HasSubstr("exceeds the limit"));
}

TEST(StreamCodecTest, OverlongVarintRefused) {
  auto back = ReadAll(std::string(11, '\x80'));
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(std::string(back.status().message()),
              HasSubstr("bad record length"));
}

TEST(StreamCodecTest, GarbageRecordRefused) {
  auto back = ReadAll(std::string("\x03\xff\xff\xff", 4));
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(std::string(back.status().message()),
              HasSubstr("does not parse"));
}

TEST(StreamCodecTest, UnknownOptionalRecordSkippedUnknownRequiredRefused) {
  // A record from a newer writer: body field 6 (unknown here).
  const std::string future_body = "\x32\x01x";
  std::string framed = FrameRecords(SampleRecords());
  std::string with_optional =
      std::string(1, static_cast<char>(future_body.size())) + future_body +
      framed;
  uint64_t skipped = 0;
  auto back = ReadAll(with_optional, &skipped);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->size(), 5u);
  EXPECT_EQ(skipped, 1u);
  const std::string required = future_body + "\x78\x01";  // required = true
  std::string with_required =
      std::string(1, static_cast<char>(required.size())) + required + framed;
  back = ReadAll(with_required);
  ASSERT_FALSE(back.ok());
  EXPECT_THAT(std::string(back.status().message()),
              HasSubstr("required record type"));
}

TEST(ParseExtentListTest, ParsesLinesCommentsAndHex) {
  auto set =
      ParseExtentList("# changed\n0 4096\n\n0x2000 0x1000  # hex\n", "f");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(*set, (cbt::ExtentSet{{0, 4096}, {8192, 4096}}));
}

TEST(ParseExtentListTest, BadLineNamesFileAndLine) {
  auto set = ParseExtentList("0 4096\n12\n", "changes.txt");
  ASSERT_FALSE(set.ok());
  EXPECT_THAT(std::string(set.status().message()),
              HasSubstr("changes.txt line 2"));
}

// Counts reads so a test can see how far ahead of the emitter they run.
class CountingDevice : public common::MemoryBlockReader {
 public:
  using common::MemoryBlockReader::MemoryBlockReader;
  absl::Status ReadAt(uint64_t off, std::span<uint8_t> buf) override {
    ++reads;
    if (fail_at && off == *fail_at)
      return absl::DataLossError("dev: bad sector");
    return common::MemoryBlockReader::ReadAt(off, buf);
  }
  std::atomic<uint64_t> reads{0};
  std::optional<uint64_t> fail_at;
};

class WindowCheckingSink : public VectorRecordSink {
 public:
  WindowCheckingSink(CountingDevice& dev, size_t window)
      : dev_(dev), window_(window) {}
  absl::Status Put(const stream::Record& r) override {
    if (r.has_chunk() || r.has_zero_run() || r.has_chunk_ref()) {
      ++emitted_;
      max_ahead = std::max<uint64_t>(max_ahead, dev_.reads - emitted_);
    }
    return VectorRecordSink::Put(r);
  }
  uint64_t max_ahead = 0;

 private:
  CountingDevice& dev_;
  size_t window_;
  uint64_t emitted_ = 0;
};

constexpr uint32_t kChunk = 4096;

std::string Volume(size_t chunks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string v(chunks * kChunk, '\0');
  for (auto& c : v) c = static_cast<char>(rng());
  return v;
}

ProducerOptions Opts() {
  ProducerOptions o;
  o.host = "h";
  o.volume = "v";
  o.version_id = "x";
  o.chunk_size_bytes = kChunk;
  o.created_unix_ms = 1;
  return o;
}

TEST(StreamProducerTest, FullStreamRootHashAndZeroRuns) {
  std::string vol = Volume(10, 1);
  std::fill(vol.begin() + 2 * kChunk, vol.begin() + 5 * kChunk, '\0');
  common::MemoryBlockReader dev(vol);
  VectorRecordSink sink;
  auto r = ProduceStream(dev, {}, {}, nullptr, Opts(), sink);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<ChunkHash> entries;
  for (size_t i = 0; i < 10; ++i) {
    entries.push_back(EntryOf(
        {reinterpret_cast<const uint8_t*>(vol.data()) + i * kChunk, kChunk}));
  }
  EXPECT_EQ(r->root_hash, ComputeRootHash(vol.size(), kChunk, entries));
  ASSERT_EQ(sink.records.size(), 1 + 7 + 1 + 1u);  // header, 7 chunks, run
  EXPECT_TRUE(sink.finished);
  const auto& zr = sink.records[3];
  ASSERT_TRUE(zr.has_zero_run());
  EXPECT_EQ(zr.zero_run().first_chunk_index(), 2u);
  EXPECT_EQ(zr.zero_run().chunk_count(), 3u);
  EXPECT_EQ(sink.records.back().trailer().zero_chunks(), 3u);
}

// A full of a thin volume or sparse file: the chunks wholly inside
// `zeroed` (unallocated) become zeros without a read; one only partly
// inside is read. Garbage stands in the unallocated bytes to show that
// nothing was read there (the stream says zero).
TEST(StreamProducerTest, AFullReadsOnlyWhatIsAllocated) {
  std::string vol = Volume(20, 8);
  CountingDevice dev(vol);
  const cbt::ExtentSet zeroed{{4 * kChunk, 6 * kChunk},
                              {12 * kChunk + 10, kChunk}};
  VectorRecordSink sink;
  auto r = ProduceStream(dev, {}, zeroed, nullptr, Opts(), sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_read, 14u);
  EXPECT_EQ(r->bytes_read, 14u * kChunk);
  EXPECT_EQ(dev.reads.load(), 14u);
  std::vector<ChunkHash> entries;
  for (size_t i = 0; i < 20; ++i) {
    entries.push_back(
        i >= 4 && i < 10
            ? kZeroEntry
            : EntryOf(
                  {reinterpret_cast<const uint8_t*>(vol.data()) + i * kChunk,
                   kChunk}));
  }
  EXPECT_EQ(r->root_hash, ComputeRootHash(vol.size(), kChunk, entries));
  EXPECT_EQ(sink.records.back().trailer().zero_chunks(), 6u);
}

// A chunk that now holds what another chunk of the base held travels
// whole: the producer does not hold the base to look it up (the receiver
// stores it once, and the gRPC sink's dedup handshake sends a reference).
TEST(StreamProducerTest, IncrementalSendsChangedSkipsUnchanged) {
  std::string vol = Volume(10, 2);
  common::MemoryBlockReader dev0(vol);
  VectorRecordSink s0;
  auto full = ProduceStream(dev0, {}, {}, nullptr, Opts(), s0);
  ASSERT_TRUE(full.ok());
  VersionIndex base;
  base.version_id = "x";
  base.volume_size_bytes = vol.size();
  base.chunk_size_bytes = kChunk;
  for (size_t i = 0; i < 10; ++i) {
    base.entries.push_back(EntryOf(
        {reinterpret_cast<const uint8_t*>(vol.data()) + i * kChunk, kChunk}));
  }
  base.root_hash = full->root_hash;
  // chunk 1: new bytes; chunk 4: a copy of chunk 7; chunk 6: reported
  // changed but identical; chunk 8: discarded.
  vol[kChunk + 5] ^= 1;
  vol.replace(4 * kChunk, kChunk, vol.substr(7 * kChunk, kChunk));
  std::fill(vol.begin() + 8 * kChunk, vol.begin() + 9 * kChunk, '\0');
  cbt::ExtentSet changed{
      {kChunk + 5, 1}, {4 * kChunk, kChunk}, {6 * kChunk, 10}};
  cbt::ExtentSet zeroed{{8 * kChunk, kChunk}};
  CountingDevice dev(vol);
  VectorRecordSink sink;
  ProducerOptions o = Opts();
  o.version_id = "y";
  auto r = ProduceStream(dev, changed, zeroed, &base, o, sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(dev.reads.load(), 3u) << "the discarded chunk must not be read";
  EXPECT_EQ(r->chunks_read, 3u);
  EXPECT_EQ(r->bytes_read, 3u * kChunk) << "chunk 6 was read, though unsent";
  ASSERT_EQ(sink.records.size(), 5u);
  EXPECT_EQ(sink.records[1].chunk().chunk_index(), 1u);
  EXPECT_EQ(sink.records[2].chunk().chunk_index(), 4u);
  EXPECT_EQ(sink.records[3].zero_run().first_chunk_index(), 8u);
  EXPECT_EQ(sink.records[0].header().base_root_hash(),
            base.root_hash.ToBytes());
}

// The hash method: everything is "changed", almost nothing differs. What
// was read is the whole volume (what the run reports), not what was sent.
TEST(StreamProducerTest, BytesReadCountsEveryChunkReadNotOnlyThoseSent) {
  const std::string vol = Volume(6, 3) + std::string(100, 'x');  // short tail
  VersionIndex base;
  base.version_id = "x";
  base.volume_size_bytes = vol.size();
  base.chunk_size_bytes = kChunk;
  for (size_t i = 0; i * kChunk < vol.size(); ++i) {
    const size_t len = std::min<size_t>(kChunk, vol.size() - i * kChunk);
    base.entries.push_back(EntryOf(
        {reinterpret_cast<const uint8_t*>(vol.data()) + i * kChunk, len}));
  }
  base.root_hash = ComputeRootHash(vol.size(), kChunk, base.entries);
  std::string now = vol;
  now[2 * kChunk] ^= 1;
  common::MemoryBlockReader dev(now);
  VectorRecordSink sink;
  ProducerOptions o = Opts();
  o.version_id = "y";
  auto r = ProduceStream(dev, {{0, now.size()}}, {}, &base, o, sink);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks_read, 7u);
  EXPECT_EQ(r->bytes_read, now.size());
  ASSERT_EQ(sink.records.size(), 3u);  // header, the one changed chunk, trailer
}

TEST(StreamProducerTest, WindowBoundsReadAheadAndOutputIsDeterministic) {
  const std::string vol = Volume(64, 3);
  std::string first;
  for (size_t window : {1, 4, 16}) {
    CountingDevice dev(vol);
    WindowCheckingSink sink(dev, window);
    ProducerOptions o = Opts();
    o.threads = 3;
    o.window_chunks = window;
    ASSERT_TRUE(ProduceStream(dev, {}, {}, nullptr, o, sink).ok());
    EXPECT_LE(sink.max_ahead, window) << "window " << window;
    const std::string framed = FrameRecords(sink.records);
    if (first.empty()) first = framed;
    EXPECT_TRUE(framed == first) << "output depends on the window";
  }
}

// Overlapped reads that complete newest first, to show the producer's
// output does not depend on completion order; counts reads in flight.
class LifoAsyncDevice : public common::MemoryBlockReader {
 public:
  using common::MemoryBlockReader::MemoryBlockReader;
  class Reader : public common::AsyncReader {
   public:
    Reader(LifoAsyncDevice& dev, size_t depth) : dev_(dev), depth_(depth) {}
    absl::Status Submit(uint64_t tag, uint64_t off,
                        std::span<uint8_t> buf) override {
      if (pending_.size() >= depth_) return absl::InternalError("over depth");
      pending_.push_back({tag, off, buf});
      dev_.max_in_flight = std::max(dev_.max_in_flight, pending_.size());
      return absl::OkStatus();
    }
    absl::StatusOr<std::vector<Completion>> Reap(size_t min) override {
      std::vector<Completion> out;
      // Complete only when asked to wait, newest first.
      while (min > 0 && !pending_.empty()) {
        auto p = pending_.back();
        pending_.pop_back();
        absl::Status s = dev_.fail_at && *dev_.fail_at == p.off
                             ? absl::DataLossError("dev: bad sector")
                             : dev_.ReadAt(p.off, p.buf);
        out.push_back({p.tag, s});
        if (out.size() >= min) break;
      }
      return out;
    }

   private:
    struct P {
      uint64_t tag, off;
      std::span<uint8_t> buf;
    };
    LifoAsyncDevice& dev_;
    size_t depth_;
    std::vector<P> pending_;
  };
  std::unique_ptr<common::AsyncReader> NewAsyncReader(size_t depth) override {
    return std::make_unique<Reader>(*this, depth);
  }
  size_t max_in_flight = 0;
  std::optional<uint64_t> fail_at;
};

TEST(StreamProducerTest, DefaultWindowIsAboutFourMiBOfChunks) {
  EXPECT_EQ(WindowChunks(0, 64u << 10), 64u);
  EXPECT_EQ(WindowChunks(0, 256u << 10), 16u);  // at least 16
  EXPECT_EQ(WindowChunks(0, 16u << 20), 16u);
  EXPECT_EQ(WindowChunks(0, 4096), 256u);     // at most 256
  EXPECT_EQ(WindowChunks(5, 64u << 10), 5u);  // asked for: as asked
}

TEST(StreamProducerTest, OverlappedReadsGiveTheSameStreamInBoundedWindow) {
  std::string vol = Volume(80, 6);
  std::fill(vol.begin() + 10 * kChunk, vol.begin() + 13 * kChunk, '\0');
  common::MemoryBlockReader plain(vol);
  VectorRecordSink want;
  ProducerOptions o = Opts();
  ASSERT_TRUE(ProduceStream(plain, {}, {}, nullptr, o, want).ok());
  for (size_t window : {1, 3, 16}) {
    LifoAsyncDevice dev(vol);
    VectorRecordSink got;
    o.window_chunks = window;
    o.threads = 2;
    auto r = ProduceStream(dev, {}, {}, nullptr, o, got);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(FrameRecords(got.records) == FrameRecords(want.records))
        << "window " << window;
    EXPECT_LE(dev.max_in_flight, window);
    if (window == 16) {
      EXPECT_GT(dev.max_in_flight, 1u) << "reads never overlapped";
    }
  }
  LifoAsyncDevice bad(vol);
  bad.fail_at = 40 * kChunk;
  VectorRecordSink sink;
  auto r = ProduceStream(bad, {}, {}, nullptr, o, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("bad sector"));
}

TEST(StreamProducerTest, ReadErrorStopsWithoutTrailer) {
  CountingDevice dev(Volume(32, 4));
  dev.fail_at = 9 * kChunk;
  VectorRecordSink sink;
  auto r = ProduceStream(dev, {}, {}, nullptr, Opts(), sink);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("bad sector"));
  EXPECT_FALSE(sink.records.back().has_trailer());
  EXPECT_FALSE(sink.finished);
}

TEST(StreamProducerTest, ResizeWithoutAllowResizeRefused) {
  VersionIndex base;
  base.version_id = "x";
  base.volume_size_bytes = 8 * kChunk;
  base.chunk_size_bytes = kChunk;
  base.entries.assign(8, kZeroEntry);
  common::MemoryBlockReader dev(Volume(10, 5));
  VectorRecordSink sink;
  auto r = ProduceStream(dev, {}, {}, &base, Opts(), sink);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("--allow-resize"));
}

}  // namespace
}  // namespace cbtd::transport
