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

// After a test edits header fields on purpose: the checksum follows, so the
// receiver's own checks of those fields are what is tested.
void Reseal(std::vector<stream::Record>& r) {
  transport::SealHeader(*r[0].mutable_header());
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
                      "send its bytes"},
        MalformedCase{"SecondHeader",
                      [](auto& r) { r.insert(r.begin() + 1, r[0]); },
                      "second header"},
        MalformedCase{"UnknownBase",
                      [](auto& r) {
                        r[0].mutable_header()->set_base_version_id("v0");
                        Reseal(r);
                      },
                      "base version host1/vol1@v0 does not exist"},
        MalformedCase{"BaseRootHashMismatch",
                      [](auto& r) {
                        r[0].mutable_header()->set_base_root_hash(
                            std::string(32, 'b'));
                        Reseal(r);
                      },
                      "but the vault's has"},
        MalformedCase{"ChunkSizeChange",
                      [](auto& r) {
                        r[0].mutable_header()->set_chunk_size_bytes(8192);
                        Reseal(r);
                      },
                      "stream chunk size 8192 differs from 16384"},
        MalformedCase{"VolumeSizeChangeWithoutResize",
                      [](auto& r) {
                        r[0].mutable_header()->set_volume_size_bytes(1 << 20);
                        Reseal(r);
                      },
                      "resend with allow_resize"},
        MalformedCase{"VersionExists",
                      [](auto& r) {
                        r[0].mutable_header()->set_new_version_id("v1");
                        Reseal(r);
                      },
                      "host1/vol1@v1 already exists"},
        MalformedCase{"BadVersionName",
                      [](auto& r) {
                        r[0].mutable_header()->set_new_version_id("../x");
                        Reseal(r);
                      },
                      "invalid new version id"},
        MalformedCase{"NoHeader", [](auto& r) { r.erase(r.begin()); },
                      "does not start with a header"},
        MalformedCase{
            "HeaderFieldChangedWithoutChecksum",
            [](auto& r) { r[0].mutable_header()->set_volume_id("vol2"); },
            "header checksum mismatch"},
        MalformedCase{"StreamFormat1",
                      [](auto& r) {
                        r[0].mutable_header()->set_format_version(1);
                        r[0].mutable_header()->clear_header_checksum();
                      },
                      "stream format version 1 is not supported"},
        // Format 2: a checksum that does not cover encryption.
        MalformedCase{"StreamFormat2",
                      [](auto& r) {
                        r[0].mutable_header()->set_format_version(2);
                        Reseal(r);
                      },
                      "stream format version 2 is not supported"},
        MalformedCase{
            "NoHeaderChecksum",
            [](auto& r) { r[0].mutable_header()->clear_header_checksum(); },
            "no header checksum"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST_F(ReceiveSessionTest, OversizeRecordLengthRefusedBeforeAllocating) {
  ReceiveFirstFull();
  const auto before = Listing();
  // A varint of 2^40: far above kMaxRecordBytes.
  stream::Record header = records_[0];
  header.mutable_header()->set_new_version_id("v2");
  transport::SealHeader(*header.mutable_header());
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
  // Every stored chunk is intact (ReadChunk checks checksum and hash).
  for (const std::string& key : Keys("tenants/host1/packs")) {
    auto entries = ParsePack(*store_->Get(key), key);
    ASSERT_TRUE(entries.ok()) << entries.status();
    for (const PackEntry& e : *entries) {
      EXPECT_TRUE(vault_->ReadChunk("host1", e.id).ok()) << key;
    }
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

TEST_F(ReceiveSessionTest, ShrinkRestoresNewSizeAndReadsTheWholeBase) {
  ReceiveFirstFull();
  std::string vol = vol1_.substr(0, 30 * kChunk + 123);
  const VersionIndex base = Index("v1");
  transport::ProducerOptions opts;
  opts.allow_resize = true;
  auto r = Receive(Produce(vol, &base, {}, "v2", opts));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(RestoreToFile("v2", "r2") == vol);
}

// The base index is streamed, so its entries are checked only at the end:
// a base damaged anywhere must still refuse the commit, name the base,
// and leave no version and no temporary file behind.
TEST_F(ReceiveSessionTest, DamagedBaseIndexPublishesNothing) {
  ReceiveFirstFull();
  const VersionIndex base = Index("v1");
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  Scribble(vol, changed, 3, 77);
  const std::string stream = Produce(vol, &base, changed, "v2");
  const std::string key = Vault::IndexKey(kVol, "v1");
  const std::string good = *store_->Get(key);
  // An entry in the middle, and the trailing checksum.
  for (size_t at : {good.size() - 32 - 20 * 32 + 5, good.size() - 1}) {
    SCOPED_TRACE(at);
    std::string bad = good;
    bad[at] ^= 1;
    ASSERT_TRUE(store_->Put(key, bad).ok());
    auto r = Receive(stream);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("host1/vol1@v1"));
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("[no version was created]"));
    EXPECT_FALSE(*store_->Exists(Vault::IndexKey(kVol, "v2")));
    for (const auto& [path, bytes] : Listing()) {
      EXPECT_EQ(path.find(".tmp."), std::string::npos) << path << " left";
    }
  }
  ASSERT_TRUE(store_->Put(key, good).ok());
  ASSERT_TRUE(Receive(stream).ok()) << "the stream itself was good";
}

// Fault 1 of issue 13: a host that knows only the hash of another host's
// chunk forges a stream that references it, to read the bytes back through
// its own version. The reference must be refused: the bytes were never
// shown, and the chunk is in no version of this host.
TEST_F(ReceiveSessionTest, ForeignChunkRefIsRefused) {
  ReceiveFirstFull();  // host1/vol1@v1
  const VersionIndex v1 = Index("v1");
  const ChunkHash secret = v1.entries[0];
  ASSERT_FALSE(transport::IsZeroEntry(secret));

  // host2's honest stream of a one-chunk volume (all zeros), then forged:
  // the zero run becomes a reference to host1's chunk, the trailer agrees.
  transport::ProducerOptions as2;
  as2.host = "host2";
  as2.volume = "loot";
  Produce(std::string(kChunk, '\0'), nullptr, {}, "stolen", as2);
  ASSERT_EQ(records_.size(), 3u);  // header, zero run, trailer
  std::vector<stream::Record> forged = {records_[0]};
  stream::Record ref;
  ref.set_required(true);
  ref.mutable_chunk_ref()->set_chunk_index(0);
  ref.mutable_chunk_ref()->set_hash(secret.ToBytes());
  forged.push_back(ref);
  stream::Record trailer;
  trailer.set_required(true);
  trailer.mutable_trailer()->set_chunk_ref_records(1);
  trailer.mutable_trailer()->set_root_hash(
      transport::ComputeRootHash(kChunk, kChunk, std::vector<ChunkHash>{secret})
          .ToBytes());
  forged.push_back(trailer);

  const auto before = Listing();
  auto r = Receive(transport::FrameRecords(forged));
  ASSERT_FALSE(r.ok()) << "a chunk reference by hash alone was accepted";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("send its bytes"));
  ExpectUntouched(before, /*exact=*/true);
  auto versions = vault_->ListVersions({"host2", "loot"});
  ASSERT_TRUE(versions.ok());
  EXPECT_TRUE(versions->empty());

  // With the bytes (proof of possession) the same version is accepted.
  std::string bytes = vol1_.substr(0, kChunk);
  r = Receive(Produce(bytes, nullptr, {}, "stolen", as2));
  ASSERT_TRUE(r.ok()) << r.status();
  auto stolen = vault_->ReadIndex({"host2", "loot"}, "stolen");
  ASSERT_TRUE(stolen.ok()) << stolen.status();
  EXPECT_EQ(stolen->entries[0], secret);
}

// The dedup handshake answers for the asking host's own scope only: the
// chunks of its committed versions and what this session received with
// its bytes.
TEST_F(ReceiveSessionTest, HaveChunksDoesNotRevealAnotherHostsChunks) {
  ReceiveFirstFull();  // host1/vol1@v1
  const VersionIndex v1 = Index("v1");
  const ChunkHash secret = v1.entries[0];
  transport::ProducerOptions as2;
  as2.host = "host2";
  as2.volume = "probe";
  const std::string mine = RandomVolume(8 * kChunk, 77);
  Produce(mine, nullptr, {}, "p1", as2);
  auto session = ReceiveSession::Open(*vault_, records_[0].header());
  ASSERT_TRUE(session.ok()) << session.status();
  auto have = (*session)->HaveChunks(std::vector<ChunkHash>{secret});
  ASSERT_TRUE(have.ok()) << have.status();
  EXPECT_EQ(*have, std::vector<bool>{false})
      << "host2 learned that the vault holds host1's chunk";
  // A chunk host2 sent with its bytes in this session is in its scope.
  ASSERT_TRUE(records_[1].has_chunk());
  ASSERT_TRUE((*session)->Apply(records_[1]).ok());
  auto sent = ChunkHash::FromBytes(records_[1].chunk().hash());
  ASSERT_TRUE(sent.ok());
  have = (*session)->HaveChunks(std::vector<ChunkHash>{*sent, secret});
  ASSERT_TRUE(have.ok()) << have.status();
  EXPECT_EQ(*have, (std::vector<bool>{true, false}));
}

// Another volume of the same host is the host's own scope: a reference to
// one of its chunks needs no bytes.
TEST_F(ReceiveSessionTest, ChunkRefToTheSameHostsOtherVolumeIsAccepted) {
  ReceiveFirstFull();  // host1/vol1@v1
  const VersionIndex v1 = Index("v1");
  transport::ProducerOptions other;
  other.volume = "vol2";
  const std::string clone = vol1_.substr(0, kChunk);
  Produce(clone, nullptr, {}, "c1", other);
  ASSERT_EQ(records_.size(), 3u);  // header, chunk, trailer
  std::vector<stream::Record> recs = records_;
  stream::Record ref;
  ref.set_required(true);
  ref.mutable_chunk_ref()->set_chunk_index(0);
  ref.mutable_chunk_ref()->set_hash(v1.entries[0].ToBytes());
  recs[1] = ref;
  stream::Trailer* t = recs[2].mutable_trailer();
  t->set_chunk_records(0);
  t->set_payload_bytes(0);
  t->set_raw_bytes(0);
  t->set_chunk_ref_records(1);
  auto r = Receive(transport::FrameRecords(recs));
  ASSERT_TRUE(r.ok()) << r.status();
  auto c1 = vault_->ReadIndex({"host1", "vol2"}, "c1");
  ASSERT_TRUE(c1.ok()) << c1.status();
  EXPECT_EQ(c1->entries[0], v1.entries[0]);
}

// Fault 2 of issue 13: a valid stream followed by more bytes committed the
// version and then failed, saying no version was created. Bytes after the
// trailer are refused before the commit.
TEST_F(ReceiveSessionTest, TrailingBytesAfterTrailerAreRefusedBeforeCommit) {
  ReceiveFirstFull();
  std::string vol = vol1_;
  cbt::ExtentSet changed;
  Scribble(vol, changed, 4, 12);
  const VersionIndex base = Index("v1");
  const std::string full = Produce(vol, &base, changed, "v2");
  const stream::Record trailer = records_.back();
  ASSERT_TRUE(trailer.has_trailer());
  const std::vector<std::pair<std::string, std::string>> tails = {
      {"garbage", "this is not a record"},
      {"a second trailer", transport::FrameRecords({&trailer, 1})},
      {"an empty record", std::string(1, '\0')},
      {"a second stream", full},
  };
  for (const auto& [what, tail] : tails) {
    const auto before = Listing();
    auto r = Receive(full + tail);
    ASSERT_FALSE(r.ok()) << what << " after the trailer was accepted";
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("after its trailer"))
        << what;
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("no version was created"))
        << what;
    EXPECT_EQ(Versions(), std::vector<std::string>{"v1"})
        << what << ": the version was committed anyway";
    ExpectUntouched(before, /*exact=*/false);
  }
  auto r = Receive(full);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Versions(), (std::vector<std::string>{"v1", "v2"}));
}

// Fault 3 of issue 13: one flipped byte in the header of a stream file
// (the volume name, the version id, the creation time, the host) stored
// the data under another name. Every header field is covered by a
// checksum: the stream is refused and the vault is unchanged.
TEST_F(ReceiveSessionTest, FlippedHeaderByteIsRefused) {
  ReceiveFirstFull();
  const std::string vol = RandomVolume(6 * kChunk, 9);
  const std::string full = Produce(vol, nullptr, {}, "v2");
  // The header record: its varint length, then its bytes.
  ASSERT_LT(static_cast<uint8_t>(full[0]), 0x80);
  const size_t header_end = 1 + static_cast<uint8_t>(full[0]);
  const std::string header = full.substr(0, header_end);
  auto find_in_header = [&](const std::string& needle) {
    const size_t at = header.find(needle);
    EXPECT_NE(at, std::string::npos) << needle;
    EXPECT_EQ(header.find(needle, at + 1), std::string::npos) << needle;
    return at;
  };
  // created_unix_ms (field 10, varint): tag 0x50 then the varint.
  std::string created(1, '\x50');
  for (uint64_t v = 1700000000000; v >= 0x80; v >>= 7) {
    created.push_back(static_cast<char>((v & 0x7f) | 0x80));
  }
  created.push_back(static_cast<char>(1700000000000 >> 35));
  struct Flip {
    std::string what;
    size_t at;
  };
  const std::vector<Flip> flips = {
      {"volume name", find_in_header("vol1") + 3},  // vol1 -> vol0
      {"version id", find_in_header("v2") + 1},     // v2 -> v3
      {"host", find_in_header("host1") + 4},        // host1 -> host0
      // A continuation byte of the varint: stays a valid varint.
      {"creation time", find_in_header(created) + 2},
  };
  for (const Flip& f : flips) {
    std::string bad = full;
    bad[f.at] = static_cast<char>(bad[f.at] ^ 1);
    const auto before = Listing();
    auto r = Receive(bad);
    ASSERT_FALSE(r.ok()) << "a stream with a flipped byte in its " << f.what
                         << " was accepted";
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("header checksum"))
        << f.what;
    ExpectUntouched(before, /*exact=*/true);
  }
  EXPECT_EQ(Versions(), std::vector<std::string>{"v1"});
  auto volumes = vault_->ListVolumes();
  ASSERT_TRUE(volumes.ok()) << volumes.status();
  EXPECT_EQ(*volumes, std::vector<VolumeName>{kVol})
      << "a flipped header stored a version elsewhere";
  ASSERT_TRUE(Receive(full).ok());
}

TEST_F(ReceiveSessionTest, HaveChunksAnswersDedupHandshake) {
  ReceiveFirstFull();
  const VersionIndex v1 = Index("v1");
  stream::Header h = records_[0].header();
  h.set_new_version_id("v2");
  h.set_base_version_id("v1");
  h.set_base_root_hash(v1.root_hash.ToBytes());
  transport::SealHeader(h);
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
