// RemoteSender and RemoteVault against a real receiver over loopback gRPC
// (insecure mode, identity "host1", a real vault behind it); the "snapshot"
// is an image file. Full then incremental backups restore byte-equal, a
// missing base is NOT_FOUND, a cancelled run commits nothing, retention
// keeps what the policy says. Encryption is on unless a test turns it off:
// the key is created at first use, and a key file that can't be used, or a
// base under another key, fails the run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include <sys/stat.h>
#include "agent/remote_sender.h"
#include "agent/remote_vault.h"

#include "common/fs.h"
#include "receiver/vault_service_backend.h"
#include "tests/receiver/vault_fixture.h"
#include "transport/grpc_client.h"
#include "transport/grpc_server.h"
#include "transport/key_file.h"

namespace cbtd::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr uint64_t kChunk = 16 * 1024;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class RemotePortsTest : public receiver::testing::VaultFixture {
 protected:
  void SetUp() override {
    VaultFixture::SetUp();
    backend_ = std::make_unique<receiver::VaultServiceBackend>(*vault_);
    transport::ServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.insecure = true;
    auto server = transport::ReceiverServer::Start(backend_.get(), o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    endpoint_.identity = "host1";
    endpoint_.options.target = absl::StrCat("127.0.0.1:", server_->port());
    endpoint_.options.insecure = true;
    endpoint_.options.insecure_identity = "host1";
    endpoint_.options.retry_budget = std::chrono::seconds(2);
    volume_.name = "vol1";
    volume_.chunk_bytes = kChunk;
    image_ = dir_ + "/image";
    key_file_ = dir_ + "/keys/default.key";
    UseEncryption(true);
  }

  void UseEncryption(bool enabled) {
    EncryptionConfig e;
    e.enabled = enabled;
    e.key_file = key_file_;
    keys_ = std::make_unique<KeySource>(
        e, [this](const std::string& m) { logged_.push_back(m); });
  }

  // The key fingerprint the receiver's index of `version` names ("" for a
  // plaintext version).
  std::string StoredFingerprint(const std::string& version) {
    auto client = transport::RemoteClient::Create(endpoint_.options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return "?";
    auto idx = (*client)->GetIndex("host1", "vol1", version);
    EXPECT_TRUE(idx.ok()) << idx.status();
    return idx.ok() ? idx->key_fingerprint : "?";
  }
  void TearDown() override {
    server_.reset();
    VaultFixture::TearDown();
  }

  void WriteImage(const std::string& bytes) {
    ASSERT_TRUE(common::AtomicWriteFile(image_, bytes).ok());
  }

  absl::StatusOr<SendResult> Send(const ChangedSet& changes,
                                  const std::string& base,
                                  RunControl& control) {
    RemoteSender sender(endpoint_, *keys_);
    SendRequest r;
    r.volume = &volume_;
    r.snapshot = SnapshotRef{"vol1", "vg/vol1.cbtd-x", image_};
    r.changes = &changes;
    r.base_version = base;
    return sender.SendAndCommit(r, control);
  }

  static ChangedSet Full(uint64_t size) {
    ChangedSet c;
    c.full = true;
    c.volume_bytes = size;
    c.extents.Add(0, size);
    return c;
  }

  std::string Restored(const std::string& version) {
    RemoteVault vault(endpoint_, *keys_);
    RestoreRequest r;
    r.volume = "vol1";
    r.version = version;
    r.target_path = dir_ + "/restored-" + version;
    r.verify = true;
    auto done = vault.Restore(r);
    EXPECT_TRUE(done.ok()) << done.status();
    return common::ReadFile(r.target_path).value_or("");
  }

  std::unique_ptr<receiver::VaultServiceBackend> backend_;
  std::unique_ptr<transport::ReceiverServer> server_;
  ReceiverEndpoint endpoint_;
  VolumeConfig volume_;
  std::string image_;
  std::string key_file_;
  std::vector<std::string> logged_;
  std::unique_ptr<KeySource> keys_;
};

TEST_F(RemotePortsTest, FullThenIncrementalRestoreByteEqual) {
  std::string v1 = RandomVolume(64 * kChunk + 100, 3);
  WriteImage(v1);
  RunControl control;
  auto first = Send(Full(v1.size()), "", control);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->bytes_read, v1.size());

  std::string v2 = v1;
  ChangedSet inc;
  inc.volume_bytes = v2.size();
  Scribble(v2, inc.extents, 3, 9);
  WriteImage(v2);
  auto second = Send(inc, first->version_id, control);
  ASSERT_TRUE(second.ok()) << second.status();
  // Only the chunks the scribbles touched were read.
  EXPECT_LE(second->bytes_read, 6 * kChunk);
  EXPECT_GT(second->bytes_sent, 0u);
  EXPECT_EQ(control.progress().done_bytes, second->bytes_read);

  RemoteVault vault(endpoint_, *keys_);
  auto versions = vault.ListVersions("vol1");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_THAT(*versions, SizeIs(2));
  EXPECT_EQ((*versions)[1].version_id, second->version_id);
  EXPECT_EQ((*versions)[1].base_version_id, first->version_id);
  EXPECT_TRUE(Restored(first->version_id) == v1);
  EXPECT_TRUE(Restored(second->version_id) == v2);
  auto verify = vault.Verify("vol1", second->version_id);
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->problems.empty());
  EXPECT_GT(verify->chunks_checked, 0u);
}

TEST_F(RemotePortsTest, MissingBaseIsNotFound) {
  std::string v1 = RandomVolume(8 * kChunk, 4);
  WriteImage(v1);
  RunControl control;
  ChangedSet inc;
  inc.volume_bytes = v1.size();
  inc.extents.Add(0, kChunk);
  auto sent = Send(inc, "gone", control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sent.status().message(),
              HasSubstr("no longer holds base version gone of vol1"));
}

TEST_F(RemotePortsTest, EncryptionByDefaultCreatesTheKeyAtFirstUseAndSeals) {
  ASSERT_FALSE(Exists(key_file_));
  std::string v1 = RandomVolume(16 * kChunk + 5, 11);
  WriteImage(v1);
  RunControl control;
  auto sent = Send(Full(v1.size()), "", control);
  ASSERT_TRUE(sent.ok()) << sent.status();

  auto key = transport::LoadKeyFile(key_file_);
  ASSERT_TRUE(key.ok()) << key.status();
  struct stat st;
  ASSERT_EQ(::stat(key_file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ + "/keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_THAT(logged_, SizeIs(1));
  EXPECT_THAT(logged_[0], HasSubstr(key->key.fingerprint()));
  EXPECT_THAT(logged_[0], HasSubstr("back it up now: cbtctl key export"));
  // Sealed under that key, and restored through cbtd byte-equal.
  EXPECT_EQ(StoredFingerprint(sent->version_id), key->key.fingerprint());
  EXPECT_TRUE(Restored(sent->version_id) == v1);

  // The next run uses the same key and creates nothing.
  std::string v2 = v1;
  ChangedSet inc;
  inc.volume_bytes = v2.size();
  Scribble(v2, inc.extents, 2, 12);
  WriteImage(v2);
  auto second = Send(inc, sent->version_id, control);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(logged_, SizeIs(1));
  EXPECT_EQ(StoredFingerprint(second->version_id), key->key.fingerprint());
  EXPECT_TRUE(Restored(second->version_id) == v2);
}

TEST_F(RemotePortsTest, EncryptionNoneSendsPlaintextAndCreatesNoKey) {
  UseEncryption(false);
  std::string v1 = RandomVolume(8 * kChunk, 13);
  WriteImage(v1);
  RunControl control;
  auto sent = Send(Full(v1.size()), "", control);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(StoredFingerprint(sent->version_id), "");
  EXPECT_FALSE(Exists(key_file_));
  EXPECT_TRUE(logged_.empty());
  EXPECT_TRUE(Restored(sent->version_id) == v1);
}

TEST_F(RemotePortsTest, KeyFileOpenToOthersFailsTheRunAndIsNotReplaced) {
  auto key = transport::TenantKey::Generate();
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(transport::CreateKeyFile(key_file_, *key, 1).ok());
  ASSERT_EQ(::chmod(key_file_.c_str(), 0644), 0);
  WriteImage(RandomVolume(4 * kChunk, 14));
  RunControl control;
  auto sent = Send(Full(4 * kChunk), "", control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(sent.status().message(), HasSubstr(key_file_));
  EXPECT_THAT(sent.status().message(), HasSubstr("chmod 600"));
  EXPECT_TRUE(logged_.empty());
  ASSERT_EQ(::chmod(key_file_.c_str(), 0600), 0);
  auto still = transport::LoadKeyFile(key_file_);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_TRUE(still->key == *key);
}

TEST_F(RemotePortsTest, DamagedKeyFileFailsTheRunAndIsNotReplaced) {
  ASSERT_EQ(::mkdir((dir_ + "/keys").c_str(), 0700), 0);
  ASSERT_TRUE(common::AtomicWriteFile(key_file_, "cbtd-key-v1\nkey zz\n").ok());
  ASSERT_EQ(::chmod(key_file_.c_str(), 0600), 0);
  WriteImage(RandomVolume(4 * kChunk, 15));
  RunControl control;
  auto sent = Send(Full(4 * kChunk), "", control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(sent.status().message(), HasSubstr(key_file_));
  EXPECT_EQ(*common::ReadFile(key_file_), "cbtd-key-v1\nkey zz\n");
}

TEST_F(RemotePortsTest, BaseUnderAnotherKeyIsRefusedNamingBothKeys) {
  std::string v1 = RandomVolume(8 * kChunk, 16);
  WriteImage(v1);
  RunControl control;
  auto first = Send(Full(v1.size()), "", control);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string old_fp =
      transport::LoadKeyFile(key_file_)->key.fingerprint();
  // The host lost its key; a new one appears at first use.
  ASSERT_EQ(::unlink(key_file_.c_str()), 0);
  ChangedSet inc;
  inc.volume_bytes = v1.size();
  inc.extents.Add(0, kChunk);
  auto sent = Send(inc, first->version_id, control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string new_fp =
      transport::LoadKeyFile(key_file_)->key.fingerprint();
  EXPECT_THAT(sent.status().message(), HasSubstr(old_fp));
  EXPECT_THAT(sent.status().message(), HasSubstr(new_fp));
  EXPECT_THAT(sent.status().message(), HasSubstr("cbtctl key import"));
  RemoteVault vault(endpoint_, *keys_);
  EXPECT_THAT(*vault.ListVersions("vol1"), SizeIs(1));
}

TEST_F(RemotePortsTest, PlaintextBaseWithEncryptionOnIsRefused) {
  UseEncryption(false);
  std::string v1 = RandomVolume(8 * kChunk, 17);
  WriteImage(v1);
  RunControl control;
  auto first = Send(Full(v1.size()), "", control);
  ASSERT_TRUE(first.ok()) << first.status();
  UseEncryption(true);
  ChangedSet inc;
  inc.volume_bytes = v1.size();
  inc.extents.Add(0, kChunk);
  auto sent = Send(inc, first->version_id, control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(sent.status().message(), HasSubstr("unencrypted"));
  EXPECT_THAT(sent.status().message(), HasSubstr("encryption = none"));
}

TEST_F(RemotePortsTest, CancelledRunCommitsNothing) {
  std::string v1 = RandomVolume(8 * kChunk, 5);
  WriteImage(v1);
  RunControl control;
  control.Cancel();
  auto sent = Send(Full(v1.size()), "", control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kCancelled);
  RemoteVault vault(endpoint_, *keys_);
  auto versions = vault.ListVersions("vol1");
  EXPECT_TRUE(!versions.ok() || versions->empty());
}

TEST_F(RemotePortsTest, RetentionKeepsTheNewest) {
  std::string v = RandomVolume(8 * kChunk, 6);
  WriteImage(v);
  RunControl control;
  std::string last;
  for (int i = 0; i < 3; ++i) {
    auto sent = Send(Full(v.size()), "", control);
    ASSERT_TRUE(sent.ok()) << sent.status();
    last = sent->version_id;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  RemoteVault vault(endpoint_, *keys_);
  ASSERT_TRUE(vault.Apply("vol1", {.keep_last = 1}).ok());
  auto versions = vault.ListVersions("vol1");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_THAT(*versions, SizeIs(1));
  EXPECT_EQ((*versions)[0].version_id, last);
}

TEST_F(RemotePortsTest, UnresolvedReceiverFailsEveryCallWithItsReason) {
  ReceiverConfig none;
  absl::StatusOr<ReceiverEndpoint> e = ResolveReceiver(none);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("no [receiver] address"));
  RemoteVault vault(e, *keys_);
  EXPECT_THAT(vault.ListVersions("vol1").status().message(),
              HasSubstr("no [receiver] address"));
  ReceiverConfig tls;
  tls.address = "backup:7443";
  tls.ca_file = dir_ + "/missing-ca.pem";
  tls.cert_file = tls.key_file = tls.ca_file;
  e = ResolveReceiver(tls);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("[receiver] ca_file"));
}

}  // namespace
}  // namespace cbtd::agent
