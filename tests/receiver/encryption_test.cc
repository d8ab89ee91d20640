// Encrypted streams end to end through the receiver and the vault: the
// sender seals chunks under a tenant key (transport/sealed_chunk.h), the
// receiver stores them without being able to read them, a restore with the
// key gets the bytes back, and everything that mixes keys is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include <filesystem>

#include "receiver/verify.h"
#include "tests/receiver/vault_fixture.h"
#include "transport/chunk_cipher.h"
#include "transport/sealed_chunk.h"

namespace cbtd::receiver {
namespace {

using restore::OpenRestoreTarget;
using restore::RestoreOptions;
using ::testing::HasSubstr;
using testing::VaultFixture;
using transport::TenantKey;

TenantKey NewKey() {
  auto k = TenantKey::Generate();
  EXPECT_TRUE(k.ok()) << k.status();
  return *k;
}

class EncryptionTest : public VaultFixture {
 protected:
  transport::ProducerOptions Keyed(const TenantKey& key) {
    transport::ProducerOptions o;
    o.key = key;
    return o;
  }

  // A 40-chunk volume (+ a short last chunk) whose every chunk carries a
  // recognisable pattern, text to compress and a zero chunk.
  static std::string PatternVolume() {
    std::string v = RandomVolume(40 * kChunk + 5000, 3);
    for (size_t off = 0; off + 4096 < v.size(); off += kChunk) {
      if (off == (v.size() / 4) / kChunk * kChunk) continue;  // zero chunk
      v.replace(off + 100, kPattern.size(), kPattern);
      v.replace(off + 2000, 2000, std::string(2000, 'T'));  // compressible
    }
    return v;
  }

  // v1 (full) and v2 (incremental) under key_.
  void ReceiveEncrypted() {
    vol1_ = PatternVolume();
    auto r = Receive(Produce(vol1_, nullptr, {}, "v1", Keyed(key_)));
    ASSERT_TRUE(r.ok()) << r.status();
    vol2_ = vol1_;
    cbt::ExtentSet changed;
    Scribble(vol2_, changed, 6, 11);
    std::fill(vol2_.begin() + 9 * kChunk, vol2_.begin() + 10 * kChunk, '\0');
    changed.Add(9 * kChunk, kChunk);
    const VersionIndex base = Index("v1");
    r = Receive(Produce(vol2_, &base, changed, "v2", Keyed(key_)));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  absl::StatusOr<restore::RestoreStats> RestoreFile(
      const std::string& version, const std::string& name,
      std::optional<TenantKey> key) {
    auto target = OpenRestoreTarget(dir_ + "/" + name);
    if (!target.ok()) return target.status();
    RestoreOptions opts;
    opts.verify = true;
    opts.key = std::move(key);
    return RestoreVersion(*vault_, kVol, version, **target, opts);
  }

  // The first sealed chunk record of records_.
  stream::Chunk& FirstChunk(std::vector<stream::Record>& recs) {
    for (auto& r : recs) {
      if (r.has_chunk()) return *r.mutable_chunk();
    }
    ADD_FAILURE() << "no chunk record";
    return *recs[0].mutable_chunk();
  }

  inline static const std::string kPattern = "CBTD-PLAINTEXT-CANARY-7f3a9c";
  const TenantKey key_ = NewKey();
  std::string vol1_, vol2_;
};

TEST_F(EncryptionTest, FullAndIncrementalRestoreByteEqualWithTheKey) {
  ReceiveEncrypted();
  for (const auto& [id, want] : {std::pair{"v1", &vol1_}, {"v2", &vol2_}}) {
    auto stats = RestoreFile(id, std::string("r-") + id, key_);
    ASSERT_TRUE(stats.ok()) << id << ": " << stats.status();
    EXPECT_TRUE(ReadWholeFile(dir_ + "/r-" + id) == *want)
        << "restored bytes of " << id << " differ";
    EXPECT_EQ(stats->chunks_verified, 41u);
  }
  // An incremental restore v1 -> v2 onto the restored v1.
  RestoreOptions opts;
  opts.state_path = dir_ + "/replica.state";
  opts.key = key_;
  {
    auto t = OpenRestoreTarget(dir_ + "/replica");
    ASSERT_TRUE(RestoreVersion(*vault_, kVol, "v1", **t, opts).ok());
  }
  opts.from_version = "v1";
  opts.verify = true;
  auto t = OpenRestoreTarget(dir_ + "/replica");
  auto inc = RestoreVersion(*vault_, kVol, "v2", **t, opts);
  ASSERT_TRUE(inc.ok()) << inc.status();
  EXPECT_LT(inc->chunks_written, 15u);
  EXPECT_TRUE(ReadWholeFile(dir_ + "/replica") == vol2_);
}

TEST_F(EncryptionTest, StreamCarriesSealedChunksAndTheKeyInTheHeader) {
  const std::string vol = PatternVolume();
  Produce(vol, nullptr, {}, "v1", Keyed(key_));
  const stream::Header& h = records_[0].header();
  EXPECT_EQ(h.format_version(), 3u);
  EXPECT_EQ(h.encryption(), stream::ENCRYPTION_AES256GCM_V1);
  EXPECT_EQ(h.key_fingerprint(), key_.fingerprint());
  int chunks = 0;
  for (const auto& r : records_) {
    if (!r.has_chunk()) continue;
    ++chunks;
    const stream::Chunk& c = r.chunk();
    EXPECT_EQ(c.compression(), stream::COMPRESSION_SEALED);
    EXPECT_EQ(c.payload().find(kPattern), std::string::npos)
        << "chunk " << c.chunk_index() << " travels in plaintext";
    const std::string plain =
        vol.substr(c.chunk_index() * kChunk, c.raw_size_bytes());
    auto id = transport::KeyedChunkId(key_, transport::AsBytes(plain));
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(c.hash(), id->ToBytes()) << "chunk id is not the keyed id";
    EXPECT_NE(c.hash(),
              transport::EntryOf(transport::AsBytes(plain)).ToBytes());
  }
  EXPECT_EQ(chunks, 40);  // all but the zero chunk: a zero run
}

TEST_F(EncryptionTest, VaultHoldsNoPlaintextAndNoSha256Ids) {
  ReceiveEncrypted();
  const auto files = Listing();
  ASSERT_FALSE(files.empty());
  for (const auto& [path, contents] : files) {
    EXPECT_EQ(contents.find(kPattern), std::string::npos)
        << path << " holds plaintext of the volume";
    EXPECT_EQ(contents.find(std::string(500, 'T')), std::string::npos)
        << path << " holds plaintext of the volume";
  }
  const VersionIndex idx = Index("v1");
  EXPECT_EQ(idx.key_fingerprint, key_.fingerprint());
  for (uint64_t i = 0; i < idx.entries.size(); ++i) {
    const std::string plain = vol1_.substr(
        i * kChunk, std::min<size_t>(kChunk, vol1_.size() - i * kChunk));
    if (transport::IsZeroEntry(idx.entries[i])) continue;
    EXPECT_NE(idx.entries[i], transport::EntryOf(transport::AsBytes(plain)))
        << "index entry " << i << " is the SHA-256 of the chunk";
  }
  // The stored chunk is the sealed payload; without the key that is all.
  auto stored = vault_->ReadStoredChunk("host1", idx.entries[0]);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(stored->sealed);
  EXPECT_EQ(transport::SealedKeyFingerprint(stored->data), key_.fingerprint());
}

TEST_F(EncryptionTest, RestoreWithoutKeyOrWithWrongKeyRefusedAndNoTargetLeft) {
  ReceiveEncrypted();
  auto none = RestoreFile("v1", "nokey", std::nullopt);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr(absl::StrCat("is encrypted with key ",
                                     key_.fingerprint(), ": give --key-file")));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/nokey"));

  const TenantKey other = NewKey();
  auto wrong = RestoreFile("v1", "wrongkey", other);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr(key_.fingerprint()));
  EXPECT_THAT(std::string(wrong.status().message()),
              HasSubstr(other.fingerprint()));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/wrongkey"));
}

TEST_F(EncryptionTest, FlippedBitInSealedRecordIsDataLossEverywhere) {
  ReceiveEncrypted();
  const VersionIndex idx = Index("v1");
  const ChunkHash victim = idx.entries[5];
  DamageChunk(victim);

  auto r = RestoreFile("v1", "damaged", key_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("chunk 5 "));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/damaged"));

  VerifyScope scope;
  scope.volume = kVol;
  scope.version = "v1";
  scope.key = key_;
  auto with_key = VerifyVault(*vault_, scope);
  ASSERT_TRUE(with_key.ok()) << with_key.status();
  ASSERT_EQ(with_key->damaged.size(), 1u);
  ASSERT_FALSE(with_key->damaged[0].chunks.empty());
  EXPECT_EQ(with_key->damaged[0].chunks[0].chunk_index, 5u);
  EXPECT_EQ(with_key->chunks_checksum_only, 0u);

  // Without the key: the record checksum catches the flipped byte, and the
  // report says the rest was checked by checksum only.
  scope.key.reset();
  auto without = VerifyVault(*vault_, scope);
  ASSERT_TRUE(without.ok()) << without.status();
  ASSERT_EQ(without->damaged.size(), 1u);
  EXPECT_EQ(without->damaged[0].chunks[0].chunk_index, 5u);
  EXPECT_GT(without->chunks_checksum_only, 0u);
}

TEST_F(EncryptionTest, SealedPayloadDamagedWithValidChecksumFoundOnlyWithKey) {
  // A host that sends garbage under a valid XXH3 damages its own tenant
  // only; the receiver cannot tell, the key's holder can.
  const std::string vol = PatternVolume();
  Produce(vol, nullptr, {}, "v1", Keyed(key_));
  std::vector<stream::Record> recs = records_;
  stream::Chunk& c = FirstChunk(recs);
  (*c.mutable_payload())[transport::kSealOverhead] ^= 1;  // in the ciphertext
  c.set_payload_xxh3(XXH3_64bits(c.payload().data(), c.payload().size()));
  auto r = Receive(transport::FrameRecords(recs));
  ASSERT_TRUE(r.ok()) << r.status();
  VerifyScope scope;
  scope.volume = kVol;
  auto without = VerifyVault(*vault_, scope);
  ASSERT_TRUE(without.ok());
  EXPECT_TRUE(without->ok());
  EXPECT_EQ(without->chunks_checksum_only, without->chunks_checked);
  scope.key = key_;
  auto with_key = VerifyVault(*vault_, scope);
  ASSERT_TRUE(with_key.ok());
  ASSERT_EQ(with_key->damaged.size(), 1u);
  EXPECT_THAT(with_key->damaged[0].reason, HasSubstr("does not authenticate"));
}

TEST_F(EncryptionTest, OtherKeyOrPlaintextIntoEncryptedTenantRefusedUnchanged) {
  ReceiveEncrypted();
  const TenantKey other = NewKey();
  const std::string vol = RandomVolume(8 * kChunk, 5);
  const auto before = Listing();

  auto r = Receive(Produce(vol, nullptr, {}, "v3", Keyed(other)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("bound to key ", key_.fingerprint())));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("has key ", other.fingerprint())));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("cbtctl key import"));
  ExpectUntouched(before, /*exact=*/true);

  // Another volume of the same host is the same tenant.
  transport::ProducerOptions plain;
  plain.volume = "vol2";
  r = Receive(Produce(vol, nullptr, {}, "v3", plain));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("has no key (plaintext)"));
  ExpectUntouched(before, /*exact=*/true);
  EXPECT_EQ(Versions(), (std::vector<std::string>{"v1", "v2"}));
}

TEST_F(EncryptionTest, EncryptedIntoPlaintextTenantRefusedUnchanged) {
  const std::string vol = RandomVolume(8 * kChunk, 5);
  ASSERT_TRUE(Receive(Produce(vol, nullptr, {}, "v1")).ok());
  const auto before = Listing();
  auto r = Receive(Produce(vol, nullptr, {}, "v2", Keyed(key_)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("bound to no key (plaintext)"));
  ExpectUntouched(before, /*exact=*/true);
  // Plaintext streams keep working.
  EXPECT_TRUE(Receive(Produce(vol, nullptr, {}, "v2")).ok());
  EXPECT_TRUE(RestoresTo("v2", vol));
}

TEST_F(EncryptionTest, SenderRefusesBaseOfAnotherKey) {
  ReceiveEncrypted();
  const VersionIndex base = Index("v2");
  common::MemoryBlockReader dev(vol2_);
  transport::VectorRecordSink sink;
  transport::ProducerOptions o = Keyed(NewKey());
  o.host = "host1";
  o.volume = "vol1";
  o.version_id = "v3";
  cbt::ExtentSet changed;
  changed.Add(0, kChunk);
  auto r = transport::ProduceStream(dev, changed, {}, &base, o, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("key ", key_.fingerprint())));
  EXPECT_TRUE(sink.records.empty());
  // Nor a plaintext send on an encrypted base.
  o.key.reset();
  r = transport::ProduceStream(dev, changed, {}, &base, o, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("no key"));
}

TEST_F(EncryptionTest, HeaderEncryptionFieldsAreCoveredByTheChecksum) {
  ReceiveEncrypted();
  const std::string vol = RandomVolume(8 * kChunk, 5);
  Produce(vol, nullptr, {}, "v3", Keyed(key_));
  const std::vector<std::function<void(stream::Header&)>> tamper = {
      [](stream::Header& h) { h.set_encryption(stream::ENCRYPTION_NONE); },
      [](stream::Header& h) { h.set_key_fingerprint("0000000000000000"); },
      [](stream::Header& h) { h.clear_key_fingerprint(); },
  };
  for (size_t k = 0; k < tamper.size(); ++k) {
    std::vector<stream::Record> recs = records_;
    tamper[k](*recs[0].mutable_header());
    const auto before = Listing();
    auto r = Receive(transport::FrameRecords(recs));
    ASSERT_FALSE(r.ok()) << "tampered header " << k << " accepted";
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("header checksum mismatch"))
        << k;
    ExpectUntouched(before, /*exact=*/true);
  }
  EXPECT_TRUE(Receive(transport::FrameRecords(records_)).ok());
}

struct SealedCase {
  std::string name;
  std::function<void(stream::Chunk&)> mutate;
  std::string expect;
};

class SealedRecordTest : public EncryptionTest,
                         public ::testing::WithParamInterface<SealedCase> {};

TEST_P(SealedRecordTest, RefusedAndVaultUntouched) {
  const std::string vol = PatternVolume();
  Produce(vol, nullptr, {}, "v1", Keyed(key_));
  std::vector<stream::Record> recs = records_;
  GetParam().mutate(FirstChunk(recs));
  // Another tenant's version first, so the vault's chunk index files exist
  // and the comparison below is about what the refused stream did.
  transport::ProducerOptions other;
  other.host = "host2";
  ASSERT_TRUE(
      Receive(Produce(RandomVolume(4 * kChunk, 8), nullptr, {}, "v1", other))
          .ok());
  const auto before = Listing();
  auto r = Receive(transport::FrameRecords(recs));
  ASSERT_FALSE(r.ok()) << "a bad sealed record was accepted";
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(GetParam().expect));
  ExpectUntouched(before, /*exact=*/true);
  EXPECT_TRUE(Versions().empty());
}

void Rehash(stream::Chunk& c) {
  c.set_payload_xxh3(XXH3_64bits(c.payload().data(), c.payload().size()));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SealedRecordTest,
    ::testing::Values(
        SealedCase{"Oversize",
                   [](stream::Chunk& c) {
                     c.mutable_payload()->append(
                         transport::MaxSealedPayloadBytes(c.raw_size_bytes()),
                         'x');
                     Rehash(c);
                   },
                   "sealed payload is"},
        SealedCase{"Undersize",
                   [](stream::Chunk& c) {
                     c.mutable_payload()->resize(transport::kSealOverhead);
                     Rehash(c);
                   },
                   "sealed payload is"},
        SealedCase{"Xxh3Mismatch",
                   [](stream::Chunk& c) { (*c.mutable_payload())[40] ^= 1; },
                   "payload checksum (XXH3) mismatch"},
        SealedCase{"NotSealed",
                   [](stream::Chunk& c) {
                     c.set_compression(stream::COMPRESSION_NONE);
                   },
                   "is not sealed"},
        SealedCase{"SealedUnderAnotherKey",
                   [](stream::Chunk& c) {
                     (*c.mutable_payload())[1] ^= 1;  // its fingerprint
                     Rehash(c);
                   },
                   "not under the stream's key"},
        SealedCase{"ZeroId",
                   [](stream::Chunk& c) { c.set_hash(std::string(32, '\0')); },
                   "zero id"}),
    [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace cbtd::receiver
