// Issue 13, security: every RPC of the receiver against every kind of
// caller, as a table. The calls are forged with raw stubs (no client-side
// checks), all aimed at hostb's data: its volume "db", its version "v1",
// its open session. Only hostb may write or delete there; the admin may
// read; another host learns nothing (not even that a session exists); a
// caller without a valid certificate from the receiver's CA is refused
// during the handshake. Afterwards the vault holds what it held plus the
// owner's own new version, and hostb's versions restore.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/block_reader.h"
#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"
#include "tests/transport/grpc_test_util.h"
#include "transport/proto/service.grpc.pb.h"
#include "transport/stream_codec.h"
#include "transport/stream_producer.h"

namespace cbtd::transport {
namespace {

using grpc::StatusCode;
using testing::ReadOrDie;
using testing::VectorSink;

enum class Rpc {
  kOpenSession,
  kHaveChunks,
  kUpload,
  kListVersions,
  kGetIndex,
  kReadIndex,
  kGetChunks,
  kPrune,
  kCommitGroup,
  kHoldVersion
};
enum class Caller { kOwner, kOtherHost, kAdmin, kNoCert, kForeignCa, kExpired };

const char* Name(Rpc r) {
  static const char* const kNames[] = {
      "OpenSession", "HaveChunks", "Upload", "ListVersions", "GetIndex",
      "ReadIndex",   "GetChunks",  "Prune",  "CommitGroup",  "HoldVersion"};
  return kNames[static_cast<int>(r)];
}
const char* Name(Caller c) {
  static const char* const kNames[] = {"owner",      "other host",
                                       "admin",      "no certificate",
                                       "foreign CA", "expired certificate"};
  return kNames[static_cast<int>(c)];
}

// What each caller gets from each RPC aimed at hostb's data. NOT_FOUND for
// another host's session (it must not learn that the session exists) and
// for Prune, CommitGroup and HoldVersion (which only ever name the caller's own
// namespace, where "db" does not exist). Without an accepted certificate
// nothing gets past TLS.
StatusCode Expected(Rpc rpc, Caller caller) {
  switch (caller) {
    case Caller::kOwner:
      return StatusCode::OK;
    case Caller::kNoCert:
    case Caller::kForeignCa:
    case Caller::kExpired:
      return StatusCode::UNAVAILABLE;
    case Caller::kOtherHost:
    case Caller::kAdmin:
      break;
  }
  const bool admin = caller == Caller::kAdmin;
  switch (rpc) {
    case Rpc::kOpenSession:
      return StatusCode::PERMISSION_DENIED;  // writes: the owner alone
    case Rpc::kHaveChunks:
    case Rpc::kUpload:
    case Rpc::kPrune:
    case Rpc::kCommitGroup:
    case Rpc::kHoldVersion:
      return StatusCode::NOT_FOUND;
    case Rpc::kListVersions:
    case Rpc::kGetIndex:
    case Rpc::kReadIndex:
    case Rpc::kGetChunks:
      return admin ? StatusCode::OK : StatusCode::PERMISSION_DENIED;
  }
  return StatusCode::UNKNOWN;
}

class RpcIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTestCerts(certs_);
    ServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.tls_cert_pem = ReadOrDie(certs_ + "/server.crt");
    o.tls_key_pem = ReadOrDie(certs_ + "/server.key");
    o.client_ca_pem = ReadOrDie(certs_ + "/ca.crt");
    auto s = ReceiverServer::Start(&vault_, o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  std::unique_ptr<service::Receiver::Stub> Stub(Caller caller) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadOrDie(certs_ + "/ca.crt");
    auto with = [&](const std::string& stem) {
      ssl.pem_cert_chain = ReadOrDie(stem + ".crt");
      ssl.pem_private_key = ReadOrDie(stem + ".key");
    };
    switch (caller) {
      case Caller::kOwner:
        with(certs_ + "/hostb");
        break;
      case Caller::kOtherHost:
        with(certs_ + "/hosta");
        break;
      case Caller::kAdmin:
        with(certs_ + "/admin");
        break;
      case Caller::kNoCert:
        break;
      case Caller::kForeignCa:
        with(certs_ + "/other/hosta");  // a known name, another CA
        break;
      case Caller::kExpired:
        with(certs_ + "/expired");
        break;
    }
    return service::Receiver::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                            grpc::SslCredentials(ssl)));
  }

  static void Deadline(grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
  }

  // Calls `rpc` as `caller`; `leaked` is set when a refused call still
  // carried data back.
  grpc::Status Call(Rpc rpc, Caller caller, bool& leaked) {
    auto stub = Stub(caller);
    grpc::ClientContext ctx;
    Deadline(ctx);
    leaked = false;
    switch (rpc) {
      case Rpc::kOpenSession: {
        // Another volume of hostb's: a new session for "db" itself would
        // take over hostb's open one (issue 13, fault 5).
        service::OpenSessionRequest req;
        *req.mutable_header() = next_.header();
        req.mutable_header()->set_volume_id("scratch");
        req.mutable_header()->set_new_version_id(absl::StrCat("v", ++opened_));
        *req.mutable_header() = Rechecked(req.header());
        service::OpenSessionResponse resp;
        grpc::Status st = stub->OpenSession(&ctx, req, &resp);
        leaked = !resp.session_id().empty();
        return st;
      }
      case Rpc::kHaveChunks: {
        service::HaveChunksRequest req;
        req.set_session_id(session_id_);
        req.add_hashes(secret_.ToBytes());
        service::HaveChunksResponse resp;
        grpc::Status st = stub->HaveChunks(&ctx, req, &resp);
        leaked = resp.have_size() > 0;
        return st;
      }
      case Rpc::kUpload:
        return Upload(*stub, ctx);
      case Rpc::kListVersions: {
        service::ListVersionsRequest req;
        req.set_source_host("hostb");
        service::ListVersionsResponse resp;
        grpc::Status st = stub->ListVersions(&ctx, req, &resp);
        leaked = resp.versions_size() > 0;
        return st;
      }
      case Rpc::kGetIndex: {
        service::GetIndexRequest req;
        req.set_source_host("hostb");
        req.set_volume_id("db");
        req.set_version_id("v1");
        service::GetIndexResponse resp;
        grpc::Status st = stub->GetIndex(&ctx, req, &resp);
        leaked = resp.chunk_hashes_size() > 0 || resp.has_version();
        return st;
      }
      case Rpc::kReadIndex: {
        service::GetIndexRequest req;
        req.set_source_host("hostb");
        req.set_volume_id("db");
        req.set_version_id("v1");
        auto reader = stub->ReadIndex(&ctx, req);
        service::ReadIndexResponse resp;
        while (reader->Read(&resp)) leaked = true;
        return reader->Finish();
      }
      case Rpc::kGetChunks: {
        service::GetChunksRequest req;
        req.set_source_host("hostb");
        req.set_volume_id("db");
        req.set_version_id("v1");
        req.add_hashes(secret_.ToBytes());
        auto reader = stub->GetChunks(&ctx, req);
        service::GetChunksResponse resp;
        while (reader->Read(&resp)) leaked = true;
        return reader->Finish();
      }
      case Rpc::kPrune: {
        service::PruneRequest req;
        req.set_volume_id("db");
        req.set_keep_last(1);
        req.set_dry_run(true);
        service::PruneResponse resp;
        grpc::Status st = stub->Prune(&ctx, req, &resp);
        leaked = resp.kept_size() + resp.removed_size() > 0;
        return st;
      }
      case Rpc::kCommitGroup: {
        // hostb's v2 (sent as a member of grp@g1, committed by the owner's
        // Upload just before) as a group version of the caller's own.
        service::CommitGroupRequest req;
        req.set_group("grp");
        req.set_group_version_id("g1");
        service::GroupMember* m = req.add_members();
        m->set_volume_id("db");
        m->set_version_id("v2");
        m->set_root_hash(next_records_.back().trailer().root_hash());
        service::CommitGroupResponse resp;
        return stub->CommitGroup(&ctx, req, &resp);
      }
      case Rpc::kHoldVersion: {
        // Names the caller's own db@v1: only hostb has one.
        service::HoldVersionRequest req;
        req.set_volume_id("db");
        req.set_version_id("v1");
        req.set_hold_seconds(60);
        service::HoldVersionResponse resp;
        grpc::Status st = stub->HoldVersion(&ctx, req, &resp);
        leaked = resp.held_until_unix() != 0;
        return st;
      }
    }
    return grpc::Status(StatusCode::UNKNOWN, "no such rpc");
  }

  // Attaches to hostb's open session and sends the rest of its stream
  // (the owner's commits v2).
  grpc::Status Upload(service::Receiver::Stub& stub, grpc::ClientContext& ctx) {
    auto rw = stub.Upload(&ctx);
    service::UploadRequest first;
    first.set_session_id(session_id_);
    rw->Write(first);
    for (size_t i = 1; i < next_records_.size(); ++i) {
      service::UploadRequest rec;
      *rec.mutable_record() = next_records_[i];
      if (!rw->Write(rec)) break;
    }
    rw->WritesDone();
    service::UploadResponse resp;
    while (rw->Read(&resp)) {
    }
    return rw->Finish();
  }

  // A header with its checksum recomputed after an edit.
  static stream::Header Rechecked(stream::Header h) {
    SealHeader(h);
    return h;
  }

  test::TempDir certs_dir_{"cbtd_rpcid_", ::testing::TempDir()};
  const std::string certs_ = certs_dir_.path();
  testing::TestVault vault_;
  std::unique_ptr<ReceiverServer> server_;
  stream::Record next_;  // the header of hostb's next stream
  std::vector<stream::Record> next_records_;
  std::string session_id_;  // hostb's open session
  ChunkHash secret_;        // a chunk of hostb's v1
  int opened_ = 0;
};

TEST_F(RpcIdentityTest, EveryRpcAgainstEveryCaller) {
  // hostb's v1, and its next stream with an open session.
  const std::string data =
      testing::VolumeBytes(8 * testing::kTestChunkBytes, 77);
  auto b = RemoteClient::Create(
      testing::TlsClient(certs_, "hostb", server_->port()));
  ASSERT_TRUE(b.ok()) << b.status();
  const cbt::ExtentSet whole{{0, data.size()}};
  ASSERT_TRUE(
      testing::Backup(**b, data, "hostb", "db", "v1", nullptr, whole).ok());
  auto v1 = vault_.vault().ReadIndex({"hostb", "db"}, "v1");
  ASSERT_TRUE(v1.ok()) << v1.status();
  secret_ = v1->entries[1];
  ASSERT_FALSE(IsZeroEntry(secret_));

  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "hostb";
  po.volume = "db";
  po.version_id = "v2";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  po.group = "grp";
  po.group_version_id = "g1";
  VectorSink recs;
  ASSERT_TRUE(ProduceStream(dev, whole, {}, nullptr, po, recs).ok());
  next_records_ = recs.records;
  next_ = recs.records[0];
  {
    auto owner = Stub(Caller::kOwner);
    grpc::ClientContext ctx;
    Deadline(ctx);
    service::OpenSessionRequest req;
    *req.mutable_header() = next_.header();
    service::OpenSessionResponse resp;
    ASSERT_TRUE(owner->OpenSession(&ctx, req, &resp).ok());
    session_id_ = resp.session_id();
  }
  const auto before = vault_.Objects();

  // Callers first, so the owner's own Upload comes after every attempt
  // to hijack its session.
  const Caller callers[] = {Caller::kOtherHost, Caller::kAdmin,
                            Caller::kNoCert,    Caller::kForeignCa,
                            Caller::kExpired,   Caller::kOwner};
  const Rpc rpcs[] = {Rpc::kOpenSession,  Rpc::kHaveChunks, Rpc::kUpload,
                      Rpc::kListVersions, Rpc::kGetIndex,   Rpc::kReadIndex,
                      Rpc::kGetChunks,    Rpc::kPrune,      Rpc::kCommitGroup,
                      Rpc::kHoldVersion};
  int rows = 0;
  for (Caller caller : callers) {
    for (Rpc rpc : rpcs) {
      bool leaked = false;
      grpc::Status st = Call(rpc, caller, leaked);
      const StatusCode want = Expected(rpc, caller);
      EXPECT_EQ(st.error_code(), want)
          << Name(rpc) << " as " << Name(caller) << ": " << st.error_message();
      if (want != StatusCode::OK) {
        EXPECT_FALSE(leaked) << Name(rpc) << " as " << Name(caller)
                             << " was refused but returned data";
      }
      ++rows;
    }
  }
  EXPECT_EQ(rows, 60);
  // The owner's Upload committed v2; nothing else was committed, removed
  // or written by any call, and nothing at all outside hostb's namespace.
  auto versions = vault_.vault().ListVersions({"hostb", "db"});
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions, (std::vector<std::string>{"v1", "v2"}));
  EXPECT_TRUE(vault_.vault().ListVersions({"hosta", "db"})->empty());
  EXPECT_TRUE(vault_.vault().ListVersions({"admin", "db"})->empty());
  EXPECT_EQ(vault_.commits(), 2);
  const auto after = vault_.Objects();
  for (const auto& key : before) {
    EXPECT_TRUE(std::binary_search(after.begin(), after.end(), key))
        << key << " was removed";
  }
  for (const auto& key : after) {
    if (std::binary_search(before.begin(), before.end(), key)) continue;
    // The owner's HoldVersion holds its own v1.
    EXPECT_TRUE(key.starts_with("hosts/hostb/db/versions/v2") ||
                key.starts_with("hosts/hostb/db/summaries/") ||
                key == "hosts/hostb/db/held/v1" ||
                key.starts_with("tenants/hostb/") ||
                key == "groups/hostb/grp/g1.grp")
        << key << " was written";
  }
  // The owner's commit made v2 a listed member of grp@g1.
  auto listed = (*b)->ListVersions("", "db");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[1].group_version_id, "g1");
  for (const char* id : {"v1", "v2"}) {
    auto restored = testing::RemoteRestore(**b, "", "db", id);
    ASSERT_TRUE(restored.ok()) << id << ": " << restored.status();
    EXPECT_TRUE(*restored == data) << id;
  }
}

}  // namespace
}  // namespace cbtd::transport
