// Restore and verify through a receiver over loopback gRPC (insecure mode,
// identity "host1"), the vault behind it real: full and incremental restore
// byte-equal, a refused incremental leaves the target alone, verify names a
// damaged or missing chunk.
#include "restore/remote_restore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "receiver/vault_restore.h"
#include "receiver/vault_service_backend.h"
#include "tests/receiver/vault_fixture.h"
#include "transport/grpc_server.h"
#include "transport/sealed_chunk.h"

namespace cbtd::receiver {
namespace {

using restore::OpenRestoreTarget;
using restore::RestoreOptions;
using restore::RestoreRemoteVersion;
using restore::RestoreStats;
using restore::VerifyRemoteVersion;
using ::testing::HasSubstr;
using testing::VaultFixture;

class RemoteRestoreTest : public VaultFixture {
 protected:
  void SetUp() override {
    VaultFixture::SetUp();
    backend_ = std::make_unique<VaultServiceBackend>(*vault_);
    transport::ServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.insecure = true;
    auto server = transport::ReceiverServer::Start(backend_.get(), o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = Client("host1");
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    VaultFixture::TearDown();
  }

  std::unique_ptr<transport::RemoteClient> Client(const std::string& who) {
    transport::ClientOptions c;
    c.target = absl::StrCat("127.0.0.1:", server_->port());
    c.insecure = true;
    c.insecure_identity = who;
    c.retry_budget = std::chrono::seconds(2);
    auto client = transport::RemoteClient::Create(c);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // v1: 40 chunks and a short one, a zero chunk (from RandomVolume) and a
  // chunk repeated at two positions.
  void ReceiveV1() {
    vol1_ = RandomVolume(40 * kChunk + 5000, 1);
    vol1_.replace(7 * kChunk, kChunk, vol1_, 3 * kChunk, kChunk);
    auto r = Receive(Produce(vol1_, nullptr, {}, "v1"));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // v2 over v1: scattered writes and a chunk discarded to zeros.
  void ReceiveV2() {
    vol2_ = vol1_;
    cbt::ExtentSet changed;
    Scribble(vol2_, changed, 5, 7);
    std::fill(vol2_.begin() + 20 * kChunk, vol2_.begin() + 21 * kChunk, '\0');
    changed.Add(20 * kChunk, kChunk);
    const VersionIndex base = Index("v1");
    auto r = Receive(Produce(vol2_, &base, changed, "v2"));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  absl::StatusOr<RestoreStats> RestoreTo(const std::string& version,
                                         const std::string& name,
                                         const RestoreOptions& opts) {
    auto target = OpenRestoreTarget(dir_ + "/" + name);
    if (!target.ok()) return target.status();
    return RestoreRemoteVersion(*client_, "", "vol1", version, **target, opts);
  }

  std::unique_ptr<VaultServiceBackend> backend_;
  std::unique_ptr<transport::ReceiverServer> server_;
  std::unique_ptr<transport::RemoteClient> client_;
  std::string vol1_, vol2_;
};

TEST_F(RemoteRestoreTest, FullRestoreIsByteEqual) {
  ReceiveV1();
  RestoreOptions opts;
  opts.verify = true;
  auto stats = RestoreTo("v1", "fresh", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(ReadWholeFile(dir_ + "/fresh") == vol1_);
  EXPECT_EQ(stats->chunks, 41u);
  EXPECT_EQ(stats->chunks_written, 40u);  // all but the zero chunk
  EXPECT_EQ(stats->chunks_verified, 41u);

  // Over an existing file full of other bytes: zero chunks are written too.
  {
    std::ofstream out(dir_ + "/used", std::ios::binary);
    out << std::string(vol1_.size() + 3 * kChunk, '\xff');
  }
  stats = RestoreTo("v1", "used", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->chunks_zeroed, 1u);
  EXPECT_TRUE(ReadWholeFile(dir_ + "/used") == vol1_);

  // The same bytes as the local restore.
  auto target = OpenRestoreTarget(dir_ + "/local");
  ASSERT_TRUE(target.ok());
  ASSERT_TRUE(RestoreVersion(*vault_, kVol, "v1", **target, {}).ok());
  EXPECT_TRUE(ReadWholeFile(dir_ + "/local") == vol1_);
}

TEST_F(RemoteRestoreTest, IncrementalRestoreIsByteEqualAndWritesOnlyChanges) {
  ReceiveV1();
  ReceiveV2();
  uint64_t differing = 0;
  for (size_t off = 0; off < vol2_.size(); off += kChunk) {
    if (vol2_.compare(off, kChunk, vol1_, off, kChunk) != 0) ++differing;
  }
  ASSERT_GT(differing, 1u);

  RestoreOptions opts;
  opts.state_path = dir_ + "/replica.state";
  ASSERT_TRUE(RestoreTo("v1", "replica", opts).ok());
  ASSERT_TRUE(ReadWholeFile(dir_ + "/replica") == vol1_);
  // The state file names the real host although the restore asked for "".
  EXPECT_THAT(ReadWholeFile(opts.state_path), HasSubstr("\"host1\""));

  opts.from_version = "v1";
  opts.verify = true;
  auto stats = RestoreTo("v2", "replica", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(ReadWholeFile(dir_ + "/replica") == vol2_);
  EXPECT_EQ(stats->chunks_written + stats->chunks_zeroed, differing);
  EXPECT_EQ(stats->chunks_skipped, 41u - differing);
  EXPECT_THAT(ReadWholeFile(opts.state_path), HasSubstr("\"v2\""));
}

// A rollback: the target holds v2 (no state file says so); only the
// chunks that differ from v1 are written, and progress covers the compare
// and the writes.
TEST_F(RemoteRestoreTest, RollbackWritesOnlyTheChunksThatDiffer) {
  ReceiveV1();
  ReceiveV2();
  uint64_t differing = 0;
  for (size_t off = 0; off < vol2_.size(); off += kChunk) {
    if (vol2_.compare(off, kChunk, vol1_, off, kChunk) != 0) ++differing;
  }
  {
    std::ofstream out(dir_ + "/live", std::ios::binary);
    out << vol2_;
  }
  RestoreOptions opts;
  opts.compare_target = true;
  opts.verify = true;
  uint64_t last_done = 0, last_total = 0;
  opts.progress = [&](uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
    return true;
  };
  auto stats = RestoreTo("v1", "live", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(ReadWholeFile(dir_ + "/live") == vol1_);
  EXPECT_EQ(stats->chunks_written + stats->chunks_zeroed, differing);
  EXPECT_EQ(stats->chunks_skipped, 41u - differing);
  EXPECT_EQ(last_done, last_total);
  EXPECT_GE(last_total, vol1_.size()) << "the compare reads the whole target";

  // Rolled back already: nothing more to write.
  stats = RestoreTo("v1", "live", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->chunks_written + stats->chunks_zeroed, 0u);

  opts.from_version = "v2";
  EXPECT_EQ(RestoreTo("v1", "live", opts).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RemoteRestoreTest, ProgressCanCancelARestore) {
  ReceiveV1();
  RestoreOptions opts;
  int calls = 0;
  opts.progress = [&](uint64_t, uint64_t) { return ++calls < 3; };
  auto stats = RestoreTo("v1", "cancelled", opts);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(stats.status().message(), HasSubstr("restore it again"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/cancelled"))
      << "a target the cancelled restore created is removed";
}

TEST_F(RemoteRestoreTest, IncrementalRefusedWhenStateNamesAnotherVersion) {
  ReceiveV1();
  ReceiveV2();
  RestoreOptions opts;
  opts.state_path = dir_ + "/replica.state";
  ASSERT_TRUE(RestoreTo("v2", "replica", opts).ok());
  const std::string bytes = ReadWholeFile(dir_ + "/replica");
  const std::string state = ReadWholeFile(opts.state_path);

  opts.from_version = "v1";  // wrong: the replica holds v2
  auto stats = RestoreTo("v2", "replica", opts);
  ASSERT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition)
      << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr("host1/vol1@v2"));
  EXPECT_THAT(stats.status().message(), HasSubstr("host1/vol1@v1"));
  EXPECT_TRUE(ReadWholeFile(dir_ + "/replica") == bytes);
  EXPECT_EQ(ReadWholeFile(opts.state_path), state);
}

TEST_F(RemoteRestoreTest, AnotherHostCannotRestoreOrVerify) {
  ReceiveV1();
  auto other = Client("host2");
  auto target = OpenRestoreTarget(dir_ + "/stolen");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(RestoreRemoteVersion(*other, "host1", "vol1", "v1", **target, {})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(VerifyRemoteVersion(*other, "host1", "vol1", "v1").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ((*target)->SizeBytes(), 0u);
}

TEST_F(RemoteRestoreTest, VerifyNamesDamagedAndMissingChunks) {
  ReceiveV1();
  auto clean = VerifyRemoteVersion(*client_, "", "vol1", "v1");
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_TRUE(clean->ok());
  EXPECT_EQ(clean->host, "host1");
  EXPECT_EQ(clean->chunks, 41u);
  EXPECT_EQ(clean->chunks_checked, 39u);  // 40 non-zero, one repeated
  EXPECT_EQ(clean->root_hash, Index("v1").root_hash);

  // Flip a payload byte of chunk 12; lose chunk 30.
  const VersionIndex idx = Index("v1");
  DamageChunk(idx.entries[12]);
  LoseChunk(idx.entries[30]);

  auto report = VerifyRemoteVersion(*client_, "", "vol1", "v1");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->ok());
  ASSERT_EQ(report->damaged.size(), 2u);
  EXPECT_EQ(report->damaged[0].chunk_index, 12u);
  EXPECT_EQ(report->damaged[0].hash, idx.entries[12]);
  EXPECT_FALSE(report->damaged[0].missing);
  EXPECT_THAT(report->damaged[0].reason, HasSubstr(idx.entries[12].ToHex()));
  EXPECT_EQ(report->damaged[1].chunk_index, 30u);
  EXPECT_TRUE(report->damaged[1].missing);
  EXPECT_EQ(report->chunks_checked, 39u);

  // A restore of the damaged version stops with DATA_LOSS or NOT_FOUND
  // naming a bad chunk, and never writes the bad bytes.
  auto target = OpenRestoreTarget(dir_ + "/bad");
  ASSERT_TRUE(target.ok());
  auto stats = RestoreRemoteVersion(*client_, "", "vol1", "v1", **target, {});
  EXPECT_TRUE(absl::IsDataLoss(stats.status()) ||
              absl::IsNotFound(stats.status()))
      << stats.status();
}

// Encrypted versions over gRPC: the service serves the sealed bytes it
// stores, the restoring host opens them with its key.
class EncryptedRemoteRestoreTest : public RemoteRestoreTest {
 protected:
  void ReceiveEncrypted() {
    vol1_ = RandomVolume(40 * kChunk + 5000, 1);
    vol1_.replace(7 * kChunk, kChunk, vol1_, 3 * kChunk, kChunk);
    transport::ProducerOptions o;
    o.key = key_;
    auto r = Receive(Produce(vol1_, nullptr, {}, "v1", o));
    ASSERT_TRUE(r.ok()) << r.status();
    vol2_ = vol1_;
    cbt::ExtentSet changed;
    Scribble(vol2_, changed, 5, 7);
    const VersionIndex base = Index("v1");
    r = Receive(Produce(vol2_, &base, changed, "v2", o));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  static transport::TenantKey NewKey() {
    auto k = transport::TenantKey::Generate();
    EXPECT_TRUE(k.ok());
    return *k;
  }
  const transport::TenantKey key_ = NewKey();
};

TEST_F(EncryptedRemoteRestoreTest, FullAndIncrementalRestoreByteEqual) {
  ReceiveEncrypted();
  RestoreOptions opts;
  opts.verify = true;
  opts.key = key_;
  opts.state_path = dir_ + "/replica.state";
  auto stats = RestoreTo("v1", "replica", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(ReadWholeFile(dir_ + "/replica") == vol1_);
  opts.from_version = "v1";
  stats = RestoreTo("v2", "replica", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(ReadWholeFile(dir_ + "/replica") == vol2_);

  // The index the service hands out says how it is encrypted.
  auto idx = client_->GetIndex("", "vol1", "v2");
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->key_fingerprint, key_.fingerprint());
  // What GetChunks returns is the sealed payload, not the plaintext.
  auto sealed = client_->GetChunks("", "vol1", "v1", {idx->entries[0]});
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(transport::SealedKeyFingerprint((*sealed)[0]), key_.fingerprint());
  EXPECT_EQ((*sealed)[0].find(vol1_.substr(0, 64)), std::string::npos);
}

TEST_F(EncryptedRemoteRestoreTest, RollbackComparesByKeyedIds) {
  ReceiveEncrypted();
  {
    std::ofstream out(dir_ + "/live", std::ios::binary);
    out << vol2_;
  }
  RestoreOptions opts;
  opts.key = key_;
  opts.compare_target = true;
  auto stats = RestoreTo("v1", "live", opts);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(ReadWholeFile(dir_ + "/live") == vol1_);
  EXPECT_GT(stats->chunks_skipped, 30u) << "unchanged chunks are not written";
}

TEST_F(EncryptedRemoteRestoreTest, WithoutOrWithWrongKeyRefusedNoTargetLeft) {
  ReceiveEncrypted();
  RestoreOptions opts;
  auto stats = RestoreTo("v1", "nokey", opts);
  ASSERT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stats.status().message(), HasSubstr(key_.fingerprint()));
  EXPECT_THAT(stats.status().message(), HasSubstr("give --key-file"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/nokey"));
  const transport::TenantKey other = NewKey();
  opts.key = other;
  stats = RestoreTo("v1", "wrong", opts);
  ASSERT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stats.status().message(), HasSubstr(key_.fingerprint()));
  EXPECT_THAT(stats.status().message(), HasSubstr(other.fingerprint()));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/wrong"));
}

TEST_F(EncryptedRemoteRestoreTest, DamagedSealedChunkFoundByVerifyAndRestore) {
  ReceiveEncrypted();
  const VersionIndex idx = Index("v1");
  auto clean = VerifyRemoteVersion(*client_, "", "vol1", "v1", key_);
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_TRUE(clean->ok());
  EXPECT_TRUE(clean->content_checked);
  EXPECT_EQ(clean->chunks_checked, 39u);
  auto unkeyed = VerifyRemoteVersion(*client_, "", "vol1", "v1");
  ASSERT_TRUE(unkeyed.ok()) << unkeyed.status();
  EXPECT_FALSE(unkeyed->content_checked);

  DamageChunk(idx.entries[12]);
  auto report = VerifyRemoteVersion(*client_, "", "vol1", "v1", key_);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].chunk_index, 12u);

  RestoreOptions opts;
  opts.key = key_;
  auto stats = RestoreTo("v1", "bad", opts);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDataLoss)
      << stats.status();
  EXPECT_THAT(stats.status().message(), HasSubstr(idx.entries[12].ToHex()));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/bad"));
}

}  // namespace
}  // namespace cbtd::receiver
