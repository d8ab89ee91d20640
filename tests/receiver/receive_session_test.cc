#include "receiver/receive_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include <functional>

#include "receiver/vault_restore.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {

using restore::OpenRestoreTarget;
using restore::RestoreOptions;
using restore::RestoreStats;
namespace {

using ::testing::HasSubstr;
using testing::VaultFixture;

class ReceiveSessionTest : public VaultFixture {
 protected:
  // v1 full of a 40-chunk volume (+ a short last chunk).
  void ReceiveFirstFull() {
    vol1_ = RandomVolume(40 * kChunk + 5000, 1);
    auto r = Receive(Produce(vol1_, nullptr, {}, "v1"));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::string RestoreToFile(const std::string& id, const std::string& name,
                            RestoreOptions opts = {}) {
    const std::string path = dir_ + "/" + name;
    auto target = OpenRestoreTarget(path);
    EXPECT_TRUE(target.ok()) << target.status();
    auto stats = RestoreVersion(*vault_, kVol, id, **target, opts);
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (stats.ok()) last_stats_ = *stats;
    return ReadWholeFile(path);
  }

  std::string vol1_;
  RestoreStats last_stats_;
};

TEST_F(ReceiveSessionTest, FullThenIncrementalsRestoreEveryVersion) {
  ReceiveFirstFull();
  std::vector<std::string> states = {vol1_};
  std::string vol = vol1_;
  for (int v = 2; v <= 4; ++v) {
    cbt::ExtentSet changed;
    Scribble(vol, changed, 6, 100 + v);
    // A discard-like change too: a whole chunk becomes zeros.
    std::fill(vol.begin() + v * kChunk, vol.begin() + (v + 1) * kChunk, '\0');
    changed.Add(v * kChunk, kChunk);
    const VersionIndex base = Index(absl::StrCat("v", v - 1));
    auto r = Receive(Produce(vol, &base, changed, absl::StrCat("v", v)));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LT(r->index.stats.chunk_records, 20u) << "incremental sent too much";
    states.push_back(vol);
  }
  auto versions = vault_->ListVersions(kVol);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions, (std::vector<std::string>{"v1", "v2", "v3", "v4"}));
  for (int v = 1; v <= 4; ++v) {
    RestoreOptions opts;
    opts.verify = true;
    EXPECT_TRUE(RestoreToFile(absl::StrCat("v", v), absl::StrCat("r", v),
                              opts) == states[v - 1])
        << "restored bytes of v" << v << " differ from the source";
  }
}

TEST_F(ReceiveSessionTest, CompressionOffSendsRawPayloadsThatRestoreEqual) {
  // Half text (compressible), half random: both kinds of chunk.
  const std::string vol = RandomVolume(24 * kChunk, 21);
  transport::ProducerOptions off;
  off.zstd_level = 0;
  auto r = Receive(Produce(vol, nullptr, {}, "v1", off));
  ASSERT_TRUE(r.ok()) << r.status();
  int chunks = 0;
  for (const stream::Record& rec : records_) {
    if (!rec.has_chunk()) continue;
    ++chunks;
    EXPECT_EQ(rec.chunk().compression(), stream::COMPRESSION_NONE);
    EXPECT_EQ(rec.chunk().payload().size(), rec.chunk().raw_size_bytes());
  }
  EXPECT_GT(chunks, 20);
  RestoreOptions opts;
  opts.verify = true;
  EXPECT_TRUE(RestoreToFile("v1", "r1", opts) == vol);
  // The default level does compress the same volume's text chunks.
  Produce(vol, nullptr, {}, "v1-again");
  bool compressed = false;
  for (const stream::Record& rec : records_) {
    compressed |= rec.has_chunk() &&
                  rec.chunk().compression() == stream::COMPRESSION_ZSTD;
  }
  EXPECT_TRUE(compressed);
}

TEST_F(ReceiveSessionTest, IncrementalRestoreWritesOnlyDifferingChunks) {
  ReceiveFirstFull();
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  Scribble(vol, changed, 5, 7);
  const VersionIndex base = Index("v1");
  ASSERT_TRUE(Receive(Produce(vol, &base, changed, "v2")).ok());
  // Count the chunks whose bytes differ, independently of the vault.
  uint64_t differing = 0;
  for (size_t off = 0; off < vol.size(); off += kChunk) {
    if (vol.compare(off, kChunk, vol1_, off, kChunk) != 0) ++differing;
  }
  ASSERT_GT(differing, 0u);

  RestoreOptions opts;
  opts.state_path = dir_ + "/replica.state";
  EXPECT_TRUE(RestoreToFile("v1", "replica", opts) == vol1_);
  opts.from_version = "v1";
  opts.verify = true;
  EXPECT_TRUE(RestoreToFile("v2", "replica", opts) == vol);
  EXPECT_EQ(last_stats_.chunks_written + last_stats_.chunks_zeroed, differing);
  EXPECT_TRUE(RestoreToFile("v2", "full-v2") == vol);
}

TEST_F(ReceiveSessionTest, IncrementalRestoreRefusesTargetHoldingOtherVersion) {
  ReceiveFirstFull();
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  Scribble(vol, changed, 2, 8);
  VersionIndex base = Index("v1");
  ASSERT_TRUE(Receive(Produce(vol, &base, changed, "v2")).ok());
  base = Index("v2");
  Scribble(vol, changed, 2, 9);
  ASSERT_TRUE(Receive(Produce(vol, &base, changed, "v3")).ok());

  RestoreOptions opts;
  opts.state_path = dir_ + "/replica.state";
  RestoreToFile("v2", "replica", opts);
  const std::string before = ReadWholeFile(dir_ + "/replica");
  opts.from_version = "v1";  // wrong: the replica holds v2
  auto target = OpenRestoreTarget(dir_ + "/replica");
  ASSERT_TRUE(target.ok());
  auto stats = RestoreVersion(*vault_, kVol, "v3", **target, opts);
  ASSERT_FALSE(stats.ok());
  EXPECT_THAT(stats.status().message(), HasSubstr("host1/vol1@v2"));
  EXPECT_THAT(stats.status().message(), HasSubstr("host1/vol1@v1"));
  EXPECT_TRUE(ReadWholeFile(dir_ + "/replica") == before);
}

// One malformed stream: `mutate` edits the records of a valid incremental
// stream v1 -> v2; the receive must fail naming `expect` and leave the vault
// exactly as it was.
struct MalformedCase {
  std::string name;
  std::function<void(std::vector<stream::Record>&)> mutate;
  std::string expect;
  // The error comes before any chunk of the stream is stored, so the vault
  // must be byte-for-byte unchanged; otherwise verified chunk objects may
  // have been added (reusable by a retry, swept by GC) but nothing else.
  bool exact = true;
};

class MalformedStreamTest
    : public ReceiveSessionTest,
      public ::testing::WithParamInterface<MalformedCase> {};

// The first chunk record of the stream (index 1 in the record list).
stream::Chunk& FirstChunk(std::vector<stream::Record>& r) {
  for (auto& rec : r) {
    if (rec.has_chunk()) return *rec.mutable_chunk();
  }
  ADD_FAILURE() << "stream has no chunk record";
  return *r[0].mutable_chunk();
}

void Rehash(stream::Chunk& c) {
  c.set_payload_xxh3(XXH3_64bits(c.payload().data(), c.payload().size()));
}

TEST_P(MalformedStreamTest, RefusedWithClearErrorAndVaultUntouched) {
  ReceiveFirstFull();
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  // Fresh random bytes in chunks 3, 10 and 20: three Chunk records.
  for (uint64_t c : {3, 10, 20}) {
    for (uint32_t j = 0; j < 100; ++j) vol[c * kChunk + j * 7] ^= 0x5a;
    changed.Add(c * kChunk, kChunk);
  }
  const VersionIndex base = Index("v1");
  Produce(vol, &base, changed, "v2");
  std::vector<stream::Record> recs = records_;
  ASSERT_EQ(recs.size(), 5u);  // header, 3 chunks, trailer
  GetParam().mutate(recs);
  const auto before = Listing();
  auto r = Receive(transport::FrameRecords(recs));
  ASSERT_FALSE(r.ok()) << "malformed stream was accepted";
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(GetParam().expect));
  ExpectUntouched(before, GetParam().exact);
  auto versions = vault_->ListVersions(kVol);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions, std::vector<std::string>{"v1"});
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedStreamTest,
    ::testing::Values(
        MalformedCase{"BadPayloadChecksum",
                      [](auto& r) {
                        FirstChunk(r).set_payload_xxh3(
                            FirstChunk(r).payload_xxh3() + 1);
                      },
                      "payload checksum (XXH3) mismatch"},
        MalformedCase{
            "FlippedPayloadByte",
            [](auto& r) { (*FirstChunk(r).mutable_payload())[5] ^= 1; },
            "payload checksum"},
        MalformedCase{"WrongHash",
                      [](auto& r) {
                        auto& c = FirstChunk(r);
                        c.set_hash(transport::ChunkHash::Sha256({}).ToBytes());
                      },
                      "content hash is"},
        MalformedCase{"PayloadAndChecksumAltered",
                      [](auto& r) {
                        auto& c = FirstChunk(r);
                        c.set_compression(stream::COMPRESSION_NONE);
                        c.set_payload(std::string(c.raw_size_bytes(), 'x'));
                        Rehash(c);
                      },
                      "content hash is"},
        MalformedCase{"ChunkIndexPastEnd",
                      [](auto& r) { FirstChunk(r).set_chunk_index(41); },
                      "past the end of the volume (41 chunks"},
        MalformedCase{"DuplicateChunk",
                      [](auto& r) { r.insert(r.begin() + 2, r[1]); },
                      "duplicate or out of order", false},
        MalformedCase{"OutOfOrderChunk", [](auto& r) { std::swap(r[1], r[2]); },
                      "duplicate or out of order", false},
        MalformedCase{"WrongRawSize",
                      [](auto& r) { FirstChunk(r).set_raw_size_bytes(100); },
                      "raw size 100 bytes, expected 16384"},
        MalformedCase{"MissingTrailer", [](auto& r) { r.pop_back(); },
                      "without a trailer", false},
        MalformedCase{"WrongRootHash",
                      [](auto& r) {
                        r.back().mutable_trailer()->set_root_hash(
                            std::string(32, 'r'));
                      },
                      "root hash mismatch", false},
        MalformedCase{
            "TrailerCountsWrong",
            [](auto& r) { r.back().mutable_trailer()->set_chunk_records(2); },
            "records were lost", false},
        MalformedCase{"LostChunkRecord",
                      [](auto& r) { r.erase(r.begin() + 2); },
                      "records were lost", false},
        MalformedCase{"UnknownRequiredRecord",
                      [](auto& r) {
                        stream::Record unknown;
                        unknown.set_required(true);  // no body this build knows
                        r.insert(r.begin() + 1, unknown);
                      },
                      "required record type"},
        MalformedCase{"ChunkRefToMissingChunk",
                      [](auto& r) {
                        stream::Record ref;
                        ref.mutable_chunk_ref()->set_chunk_index(0);
                        ref.mutable_chunk_ref()->set_hash(std::string(32, 'q'));
                        r.insert(r.begin() + 1, ref);
                      },
                      "which the vault does not hold"},
        MalformedCase{"SecondHeader",
                      [](auto& r) { r.insert(r.begin() + 1, r[0]); },
                      "second header"},
        MalformedCase{
            "UnknownBase",
            [](auto& r) { r[0].mutable_header()->set_base_version_id("v0"); },
            "base version host1/vol1@v0 does not exist"},
        MalformedCase{"BaseRootHashMismatch",
                      [](auto& r) {
                        r[0].mutable_header()->set_base_root_hash(
                            std::string(32, 'b'));
                      },
                      "but the vault's has"},
        MalformedCase{
            "ChunkSizeChange",
            [](auto& r) { r[0].mutable_header()->set_chunk_size_bytes(8192); },
            "stream chunk size 8192 differs from 16384"},
        MalformedCase{"VolumeSizeChangeWithoutResize",
                      [](auto& r) {
                        r[0].mutable_header()->set_volume_size_bytes(1 << 20);
                      },
                      "resend with allow_resize"},
        MalformedCase{
            "VersionExists",
            [](auto& r) { r[0].mutable_header()->set_new_version_id("v1"); },
            "host1/vol1@v1 already exists"},
        MalformedCase{
            "BadVersionName",
            [](auto& r) { r[0].mutable_header()->set_new_version_id("../x"); },
            "invalid new version id"},
        MalformedCase{"NoHeader", [](auto& r) { r.erase(r.begin()); },
                      "does not start with a header"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST_F(ReceiveSessionTest, OversizeRecordLengthRefusedBeforeAllocating) {
  ReceiveFirstFull();
  const auto before = Listing();
  // A varint of 2^40: far above kMaxRecordBytes.
  stream::Record header = records_[0];
  header.mutable_header()->set_new_version_id("v2");
  std::string framed = transport::FrameRecords({&header, 1});
  framed += std::string("\x80\x80\x80\x80\x80\x20", 6);
  auto r = Receive(framed);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("exceeds the limit"));
  EXPECT_EQ(Listing(), before);
}

TEST_F(ReceiveSessionTest, UnknownOptionalRecordIsSkipped) {
  ReceiveFirstFull();
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  Scribble(vol, changed, 2, 3);
  const VersionIndex base = Index("v1");
  Produce(vol, &base, changed, "v2");
  std::vector<stream::Record> recs = records_;
  recs.insert(recs.begin() + 1, stream::Record());  // unknown, not required
  auto r = Receive(transport::FrameRecords(recs));
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST_F(ReceiveSessionTest, StreamTruncatedAtEveryByteLeavesNoVersion) {
  // Small volume, compressible, so the stream is short enough to cut at
  // every byte.
  std::string vol(3 * kChunk, 'a');
  vol[5] = 'b';
  ASSERT_TRUE(Receive(Produce(vol, nullptr, {}, "v1")).ok());
  vol[kChunk + 9] = 'c';
  vol[2 * kChunk + 1] = 'd';
  cbt::ExtentSet changed{{kChunk + 9, 1}, {2 * kChunk + 1, 1}};
  const VersionIndex base = Index("v1");
  const std::string full = Produce(vol, &base, changed, "v2");
  ASSERT_LT(full.size(), 4000u);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    auto r = Receive(full.substr(0, cut));
    ASSERT_FALSE(r.ok()) << "stream cut at byte " << cut << " was accepted";
    ASSERT_THAT(std::string(r.status().message()),
                ::testing::AnyOf(HasSubstr("truncated"),
                                 HasSubstr("does not start with a header")))
        << "cut at " << cut;
    ASSERT_EQ(Versions(), std::vector<std::string>{"v1"}) << "cut at " << cut;
  }
  auto r = Receive(full);
  ASSERT_TRUE(r.ok()) << r.status();
  RestoreOptions opts;
  opts.verify = true;
  EXPECT_TRUE(RestoreToFile("v2", "r2", opts) == vol);
}

TEST_F(ReceiveSessionTest, RandomCutsThenRetryReusesStoredChunks) {
  ReceiveFirstFull();
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  Scribble(vol, changed, 12, 11);
  const VersionIndex base = Index("v1");
  const std::string full = Produce(vol, &base, changed, "v2");
  std::mt19937 rng(TestSeed());
  for (int k = 0; k < 30; ++k) {
    const size_t cut = rng() % full.size();
    auto r = Receive(full.substr(0, cut));
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(Versions(), std::vector<std::string>{"v1"});
  }
  // Every stored object is intact (ReadChunk checks checksum and hash).
  for (const std::string& key : Keys("chunks")) {
    auto hash = transport::ChunkHash::FromHex(key.substr(key.rfind('/') + 1));
    ASSERT_TRUE(hash.ok());
    EXPECT_TRUE(vault_->ReadChunk(*hash).ok()) << key;
  }
  auto r = Receive(full);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->index.stats.new_objects, r->index.stats.chunk_records)
      << "the retry stored again chunks the cut attempts had stored";
  RestoreOptions opts;
  opts.verify = true;
  EXPECT_TRUE(RestoreToFile("v2", "r2", opts) == vol);
}

TEST_F(ReceiveSessionTest, ResizeNeedsAllowResizeAndRestoresNewSize) {
  ReceiveFirstFull();
  std::string vol = vol1_ + RandomVolume(3 * kChunk, 5);
  const VersionIndex base = Index("v1");
  transport::ProducerOptions opts;
  opts.allow_resize = true;
  auto r = Receive(Produce(vol, &base, {}, "v2", opts));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(RestoreToFile("v2", "r2") == vol);
}

TEST_F(ReceiveSessionTest, HaveChunksAnswersDedupHandshake) {
  ReceiveFirstFull();
  const VersionIndex v1 = Index("v1");
  stream::Header h = records_[0].header();
  h.set_new_version_id("v2");
  h.set_base_version_id("v1");
  h.set_base_root_hash(v1.root_hash.ToBytes());
  auto session = ReceiveSession::Open(*vault_, h);
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<ChunkHash> ask = {v1.entries[0],
                                transport::ChunkHash::Sha256({})};
  auto have = (*session)->HaveChunks(ask);
  ASSERT_TRUE(have.ok());
  EXPECT_EQ(*have, (std::vector<bool>{true, false}));
}

}  // namespace
}  // namespace cbtd::receiver
