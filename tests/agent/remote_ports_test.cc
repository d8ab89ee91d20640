// RemoteSender and RemoteVault against a real receiver over loopback gRPC
// (insecure mode, identity "host1", a real vault behind it); the "snapshot"
// is an image file. Full then incremental backups restore byte-equal, a
// missing base is FAILED_PRECONDITION, a cancelled run commits nothing,
// retention keeps what the policy says.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "agent/remote_sender.h"
#include "agent/remote_vault.h"
#include "common/fs.h"
#include "receiver/vault_service_backend.h"
#include "tests/receiver/vault_fixture.h"
#include "transport/grpc_server.h"

namespace cbtd::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr uint64_t kChunk = 16 * 1024;

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
    RemoteSender sender(endpoint_);
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
    RemoteVault vault(endpoint_);
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

  RemoteVault vault(endpoint_);
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

TEST_F(RemotePortsTest, MissingBaseIsFailedPrecondition) {
  std::string v1 = RandomVolume(8 * kChunk, 4);
  WriteImage(v1);
  RunControl control;
  ChangedSet inc;
  inc.volume_bytes = v1.size();
  inc.extents.Add(0, kChunk);
  auto sent = Send(inc, "gone", control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(sent.status().message(),
              HasSubstr("no longer holds base version gone of vol1"));
}

TEST_F(RemotePortsTest, CancelledRunCommitsNothing) {
  std::string v1 = RandomVolume(8 * kChunk, 5);
  WriteImage(v1);
  RunControl control;
  control.Cancel();
  auto sent = Send(Full(v1.size()), "", control);
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kCancelled);
  RemoteVault vault(endpoint_);
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
  RemoteVault vault(endpoint_);
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
  RemoteVault vault(e);
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
