// Loopback tests of the receiver service with mutual TLS and the real vault:
// end-to-end bytes, authorization, refused certificates, dedup, busy
// volumes, hostile messages, cut connections, session expiry.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"
#include "tests/transport/grpc_test_util.h"
#include "transport/proto/service.grpc.pb.h"
#include "transport/stream_codec.h"
#include "transport/stream_index.h"
#include "transport/token_bucket.h"

namespace cbtd::transport {
namespace {

using testing::Backup;
using testing::BackupOnStream;
using testing::CuttingProxy;
using testing::RemoteRestore;
using testing::TestVault;
using testing::TlsClient;
using testing::VectorSink;
using testing::VolumeBytes;

constexpr size_t kVolumeBytes = 2 * 1024 * 1024 + 4096;  // short last chunk

class GrpcTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_dir_ = new test::TempDir("cbtd_grpc_", ::testing::TempDir());
    certs_ = new std::string(certs_dir_->path());
    testing::MakeTestCerts(*certs_);
  }
  static void TearDownTestSuite() {
    delete certs_;
    delete certs_dir_;
  }

  void SetUp() override {
    ServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.tls_cert_pem = testing::ReadOrDie(*certs_ + "/server.crt");
    o.tls_key_pem = testing::ReadOrDie(*certs_ + "/server.key");
    o.client_ca_pem = testing::ReadOrDie(*certs_ + "/ca.crt");
    o.window_records = 8;
    o.max_message_bytes = 1 << 20;
    options_ = o;
    Restart();
  }

  void Restart() {
    server_.reset();
    auto s = ReceiverServer::Start(&vault_, options_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  std::unique_ptr<RemoteClient> Client(const std::string& name, int port = 0) {
    auto c = RemoteClient::Create(
        TlsClient(*certs_, name, port ? port : server_->port()));
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  static test::TempDir* certs_dir_;
  static std::string* certs_;
  TestVault vault_;
  ServerOptions options_;
  std::unique_ptr<ReceiverServer> server_;
};
test::TempDir* GrpcTransportTest::certs_dir_ = nullptr;
std::string* GrpcTransportTest::certs_ = nullptr;

cbt::ExtentSet Whole(const std::string& data) {
  return cbt::ExtentSet{{0, data.size()}};
}

TEST_F(GrpcTransportTest, FullAndIncrementalsRestoreRemotelyBytesEqual) {
  auto client = Client("hosta");
  std::string data = VolumeBytes(kVolumeBytes, 1);
  auto full =
      Backup(*client, data, "hosta", "root", "v1", nullptr, Whole(data));
  ASSERT_TRUE(full.ok()) << full.status();

  std::string prev = "v1";
  for (int round = 2; round <= 4; ++round) {
    // Change a few ranges, including the short last chunk.
    cbt::ExtentSet changed;
    for (size_t off : {size_t{100}, size_t{700000} * round % kVolumeBytes,
                       kVolumeBytes - 10}) {
      const size_t len = std::min<size_t>(5000, kVolumeBytes - off);
      for (size_t i = 0; i < len; ++i) data[off + i] = char(round * 31 + i);
      changed.Add(off, len);
    }
    // The base streamed (ReadIndex), as cbtd reads it.
    auto base = client->OpenIndex("", "root", prev);
    ASSERT_TRUE(base.ok()) << base.status();
    const std::string id = absl::StrCat("v", round);
    SendProgress progress;
    auto inc = BackupOnStream(*client, data, "hosta", "root", id, base->get(),
                              changed, &progress);
    ASSERT_TRUE(inc.ok()) << inc.status();
    // Only the touched chunks travelled.
    EXPECT_LE(progress.bytes_sent, 4 * testing::kTestChunkBytes);
    prev = id;
  }
  for (const char* id : {"v1", "v4"}) {
    auto restored = RemoteRestore(*client, "hosta", "root", id);
    ASSERT_TRUE(restored.ok()) << restored.status();
    if (std::string(id) == "v4") {
      EXPECT_TRUE(*restored == data);
    }
  }
  auto v1 = RemoteRestore(*client, "hosta", "root", "v1");
  EXPECT_TRUE(*v1 == VolumeBytes(kVolumeBytes, 1));
  auto list = client->ListVersions("", "root");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 4u);
  EXPECT_EQ(vault_.commits(), 4);
}

// ReadIndex hands out the same entries as GetIndex, and ends.
TEST_F(GrpcTransportTest, ReadIndexStreamsTheWholeIndex) {
  auto client = Client("hosta");
  const std::string data = VolumeBytes(200 * testing::kTestChunkBytes + 7, 3);
  ASSERT_TRUE(
      Backup(*client, data, "hosta", "root", "v1", nullptr, Whole(data)).ok());
  auto whole = client->GetIndex("", "root", "v1");
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto stream = client->OpenIndex("", "root", "v1");
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ((*stream)->metadata().root_hash, whole->root_hash);
  std::vector<ChunkHash> got;
  for (;;) {
    auto block = (*stream)->Next(7);  // smaller than the server's blocks
    ASSERT_TRUE(block.ok()) << block.status();
    if (block->empty()) break;
    got.insert(got.end(), block->begin(), block->end());
  }
  EXPECT_EQ(got, whole->entries);
  auto missing = client->OpenIndex("", "root", "v9");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound)
      << missing.status();
}

// An index damaged at the receiver after the sender opened it: the
// incremental fails with DATA_LOSS naming the base, and commits nothing.
TEST_F(GrpcTransportTest, ADamagedBaseIndexCommitsNothing) {
  auto client = Client("hosta");
  std::string data = VolumeBytes(kVolumeBytes, 4);
  ASSERT_TRUE(
      Backup(*client, data, "hosta", "root", "v1", nullptr, Whole(data)).ok());
  const std::string path =
      vault_.ObjectPath(receiver::Vault::IndexKey({"hosta", "root"}, "v1"));
  std::string bytes = testing::ReadOrDie(path);
  bytes[bytes.size() - 40] ^= 0x20;  // the last entry
  ASSERT_TRUE(common::AtomicWriteFile(path, bytes).ok());
  data[10] ^= 1;
  auto base = client->OpenIndex("", "root", "v1");
  ASSERT_TRUE(base.ok()) << base.status();
  auto inc = BackupOnStream(*client, data, "hosta", "root", "v2", base->get(),
                            {{10, 1}});
  ASSERT_FALSE(inc.ok());
  EXPECT_EQ(inc.status().code(), absl::StatusCode::kDataLoss) << inc.status();
  EXPECT_NE(std::string(inc.status().message()).find("v1"), std::string::npos)
      << inc.status();
  auto ids = vault_.vault().ListVersions({"hosta", "root"});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, std::vector<std::string>{"v1"});
  EXPECT_EQ(vault_.commits(), 1);
}

TEST_F(GrpcTransportTest, HostCannotListReadOrWriteAnotherHostsVolumes) {
  auto b = Client("hostb");
  std::string data = VolumeBytes(kVolumeBytes, 2);
  ASSERT_TRUE(Backup(*b, data, "hostb", "db", "v1", nullptr, Whole(data)).ok());
  auto b_index = b->GetIndex("", "db", "v1");
  ASSERT_TRUE(b_index.ok());
  const auto before = vault_.Objects();

  auto a = Client("hosta");
  EXPECT_EQ(a->ListVersions("hostb", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(a->GetIndex("hostb", "db", "v1").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      a->GetChunks("hostb", "db", "v1", {b_index->entries[0]}).status().code(),
      absl::StatusCode::kPermissionDenied);
  // Reading b's chunk through a's own (empty) namespace is refused too.
  EXPECT_FALSE(
      a->GetChunks("", "db", "v1", {b_index->entries[0]}).status().ok());
  // Writing into b's namespace (a new version, which is also how a host
  // would overwrite or shadow b's data) is refused before any byte lands.
  auto w = Backup(*a, data, "hostb", "db", "v2", nullptr, Whole(data));
  EXPECT_EQ(w.status().code(), absl::StatusCode::kPermissionDenied)
      << w.status();
  // The only remote delete, Prune, has no host field: a's prune of "db"
  // names a's own (missing) volume and never reaches b's.
  PruneRule keep1;
  keep1.keep_last = 1;
  EXPECT_EQ(a->Prune("db", keep1, false).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(vault_.Objects(), before);

  // The admin identity reads every host.
  auto admin = Client("admin");
  auto restored = RemoteRestore(*admin, "hostb", "db", "v1");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == data);
}

TEST_F(GrpcTransportTest, PruneKeepsTheRuleOnlyInTheCallersOwnNamespace) {
  using Ids = std::vector<std::string>;
  auto a = Client("hosta");
  auto b = Client("hostb");
  const std::string data = VolumeBytes(kVolumeBytes, 7);
  // Same volume name on both hosts: only the namespace tells them apart.
  for (const char* id : {"v1", "v2", "v3", "v4"}) {
    ASSERT_TRUE(
        Backup(*a, data, "hosta", "root", id, nullptr, Whole(data)).ok());
  }
  for (const char* id : {"v1", "v2"}) {
    ASSERT_TRUE(
        Backup(*b, data, "hostb", "root", id, nullptr, Whole(data)).ok());
  }
  auto versions = [&](const std::string& host) {
    auto v = vault_.vault().ListVersions({host, "root"});
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : Ids{};
  };
  const auto before = vault_.Objects();

  // A rule that keeps nothing is refused, naming the fields to set.
  auto empty = a->Prune("root", PruneRule{}, /*dry_run=*/false);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("keep_last"), std::string::npos)
      << empty.status();
  PruneRule negative;
  negative.keep_last = -1;
  EXPECT_EQ(a->Prune("root", negative, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vault_.Objects(), before);

  PruneRule keep2;
  keep2.keep_last = 2;
  EXPECT_EQ(a->Prune("nosuch", keep2, false).status().code(),
            absl::StatusCode::kNotFound);

  // A dry run reports and removes nothing.
  auto dry = a->Prune("root", keep2, /*dry_run=*/true);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->kept, (Ids{"v3", "v4"}));
  EXPECT_EQ(dry->removed, (Ids{"v1", "v2"}));
  EXPECT_EQ(vault_.Objects(), before);

  auto pruned = a->Prune("root", keep2, /*dry_run=*/false);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->kept, (Ids{"v3", "v4"}));
  EXPECT_EQ(pruned->removed, (Ids{"v1", "v2"}));
  EXPECT_EQ(versions("hosta"), (Ids{"v3", "v4"}));
  EXPECT_EQ(versions("hostb"), (Ids{"v1", "v2"}));

  // The admin reads every host but prunes only its own (empty) namespace.
  PruneRule keep1;
  keep1.keep_last = 1;
  auto admin = Client("admin");
  EXPECT_EQ(admin->Prune("root", keep1, false).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(versions("hostb"), (Ids{"v1", "v2"}));

  // Chunks stay until GC: what is kept still restores.
  auto restored = RemoteRestore(*a, "hosta", "root", "v3");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == data);
  restored = RemoteRestore(*b, "hostb", "root", "v1");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == data);
}

TEST_F(GrpcTransportTest, RefusesNoCertificateWrongCaAndExpiredCertificate) {
  const int port = server_->port();
  auto expect_refused = [&](ClientOptions o, const char* what) {
    o.retry_budget = std::chrono::milliseconds(300);
    auto c = RemoteClient::Create(o);
    if (!c.ok()) return;  // refused locally is fine too
    auto r = (*c)->ListVersions("", "");
    EXPECT_FALSE(r.ok()) << what;
    // A refused certificate is told apart from a network failure.
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated)
        << what << ": " << r.status();
  };
  ClientOptions no_cert = TlsClient(*certs_, "hosta", port);
  no_cert.cert_pem.clear();
  no_cert.key_pem.clear();
  EXPECT_FALSE(RemoteClient::Create(no_cert).ok());
  // Bypass the client-side check: TLS without a client certificate.
  {
    auto creds =
        grpc::SslCredentials({testing::ReadOrDie(*certs_ + "/ca.crt"), "", ""});
    auto ch = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), creds);
    auto stub = service::Receiver::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    service::ListVersionsRequest req;
    service::ListVersionsResponse resp;
    EXPECT_EQ(stub->ListVersions(&ctx, req, &resp).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  ClientOptions wrong_ca = TlsClient(*certs_ + "/other", "hosta", port);
  wrong_ca.ca_pem = testing::ReadOrDie(*certs_ + "/ca.crt");
  expect_refused(wrong_ca, "client cert from another CA");
  expect_refused(TlsClient(*certs_, "expired", port), "expired client cert");
  // And the client refuses a server its CA did not sign.
  ClientOptions bad_server = TlsClient(*certs_, "hosta", port);
  bad_server.ca_pem = testing::ReadOrDie(*certs_ + "/other/ca.crt");
  expect_refused(bad_server, "server cert from another CA");
  // The good certificate works against the same server.
  EXPECT_TRUE(Client("hosta")->ListVersions("", "").ok());
}

TEST(GrpcServerOptionsTest, InsecureOnlyOnLoopback) {
  TestVault vault;
  ServerOptions o;
  o.insecure = true;
  o.listen_address = "0.0.0.0:0";
  auto s = ReceiverServer::Start(&vault, o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("loopback"), absl::string_view::npos);
  o.tls_cert_pem.clear();
  o.insecure = false;
  o.listen_address = "127.0.0.1:0";
  EXPECT_EQ(ReceiverServer::Start(&vault, o).status().code(),
            absl::StatusCode::kInvalidArgument);  // no TLS material
  o.insecure = true;
  EXPECT_TRUE(ReceiverServer::Start(&vault, o).ok());
  EXPECT_TRUE(IsLoopbackAddress("[::1]:7000"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:7000"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:7000"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:7000"));
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_FALSE(IsLoopbackAddress("::"));
  EXPECT_FALSE(IsLoopbackAddress("backup.example.org:7443"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/run/cbt-receiver.sock"));
}

TEST_F(GrpcTransportTest, DedupUnchangedSendsNoPayloadOtherTenantKeepsItsOwn) {
  auto a = Client("hosta");
  std::string data = VolumeBytes(kVolumeBytes, 3);
  SendProgress first;
  ASSERT_TRUE(
      Backup(*a, data, "hosta", "vol1", "v1", nullptr, Whole(data), &first)
          .ok());
  EXPECT_GT(first.payload_bytes_sent, 0u);
  const size_t chunks_after_first = vault_.Objects().size();

  // The same content again as a new full version: nothing travels.
  SendProgress again;
  ASSERT_TRUE(
      Backup(*a, data, "hosta", "vol1", "v2", nullptr, Whole(data), &again)
          .ok());
  EXPECT_EQ(again.payload_bytes_sent, 0u);
  EXPECT_EQ(again.bytes_sent, 0u);
  EXPECT_GT(again.bytes_skipped, 0u);

  // Only v2's index (and its summary) is new: no chunk was stored again.
  EXPECT_EQ(vault_.Objects().size(), chunks_after_first + 2);

  // Another host's volume with the same content: hostb is another tenant,
  // so it must show the bytes (a hash is not possession: the handshake
  // does not vouch for hosta's chunks) and they are stored in its own
  // packs; dedup never crosses tenants.
  auto b = Client("hostb");
  SendProgress other;
  ASSERT_TRUE(
      Backup(*b, data, "hostb", "copy", "v1", nullptr, Whole(data), &other)
          .ok());
  EXPECT_EQ(other.bytes_sent, first.bytes_sent);
  EXPECT_EQ(other.bytes_skipped, first.bytes_skipped);
  for (const std::string& key : vault_.Objects()) {
    if (key.rfind("tenants/hostb/", 0) == 0) continue;
    EXPECT_TRUE(key.rfind("tenants/hosta/", 0) == 0 ||
                key.rfind("hosts/", 0) == 0)
        << key;
  }
  const ChunkHash first_chunk =
      ChunkHash::Sha256({reinterpret_cast<const uint8_t*>(data.data()),
                         testing::kTestChunkBytes});
  auto b_has = vault_.vault().HasChunk("hostb", first_chunk);
  ASSERT_TRUE(b_has.ok());
  EXPECT_TRUE(*b_has) << "hostb's copy is not in its own tenant";
  auto restored = RemoteRestore(*b, "", "copy", "v1");
  ASSERT_TRUE(restored.ok());
  EXPECT_TRUE(*restored == data);
}

// A raw stub, to send what a well-behaved client never would.
class RawClient {
 public:
  RawClient(const std::string& certs, const std::string& name, int port) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = testing::ReadOrDie(certs + "/ca.crt");
    ssl.pem_cert_chain = testing::ReadOrDie(certs + "/" + name + ".crt");
    ssl.pem_private_key = testing::ReadOrDie(certs + "/" + name + ".key");
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    stub_ = service::Receiver::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(ssl), args));
  }

  // Opens a session; returns its id or the refusal.
  absl::StatusOr<std::string> Open(const stream::Header& header) {
    grpc::ClientContext ctx;
    service::OpenSessionRequest req;
    *req.mutable_header() = header;
    service::OpenSessionResponse resp;
    grpc::Status st = stub_->OpenSession(&ctx, req, &resp);
    if (!st.ok())
      return absl::Status(absl::StatusCode(st.error_code()),
                          st.error_message());
    return resp.session_id();
  }

  absl::StatusOr<std::vector<bool>> Have(const std::string& session_id,
                                         const std::vector<ChunkHash>& hashes) {
    grpc::ClientContext ctx;
    service::HaveChunksRequest req;
    req.set_session_id(session_id);
    for (const auto& h : hashes) req.add_hashes(h.ToBytes());
    service::HaveChunksResponse resp;
    grpc::Status st = stub_->HaveChunks(&ctx, req, &resp);
    if (!st.ok()) {
      return absl::Status(absl::StatusCode(st.error_code()),
                          st.error_message());
    }
    return std::vector<bool>(resp.have().begin(), resp.have().end());
  }

  grpc::Status HaveChunks(const std::string& session_id) {
    grpc::ClientContext ctx;
    service::HaveChunksRequest req;
    req.set_session_id(session_id);
    req.add_hashes(std::string(32, 'a'));
    service::HaveChunksResponse resp;
    return stub_->HaveChunks(&ctx, req, &resp);
  }

  // Attaches an Upload to `session_id` and sends `records`.
  grpc::Status Upload(const std::string& session_id,
                      const std::vector<stream::Record>& records) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    auto rw = stub_->Upload(&ctx);
    service::UploadRequest first;
    first.set_session_id(session_id);
    rw->Write(first);
    for (const auto& r : records) {
      service::UploadRequest req;
      *req.mutable_record() = r;
      if (!rw->Write(req)) break;
    }
    rw->WritesDone();
    service::UploadResponse resp;
    while (rw->Read(&resp)) {
    }
    return rw->Finish();
  }

  // Opens a session for `header` and sends `records`; returns the status
  // the server ends the Upload with.
  grpc::Status Send(const stream::Header& header,
                    const std::vector<stream::Record>& records) {
    grpc::ClientContext octx;
    service::OpenSessionRequest oreq;
    *oreq.mutable_header() = header;
    service::OpenSessionResponse oresp;
    grpc::Status st = stub_->OpenSession(&octx, oreq, &oresp);
    if (!st.ok()) return st;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    auto rw = stub_->Upload(&ctx);
    service::UploadRequest first;
    first.set_session_id(oresp.session_id());
    rw->Write(first);
    for (const auto& r : records) {
      service::UploadRequest req;
      *req.mutable_record() = r;
      if (!rw->Write(req)) break;
    }
    rw->WritesDone();
    service::UploadResponse resp;
    while (rw->Read(&resp)) {
    }
    return rw->Finish();
  }

 private:
  std::unique_ptr<service::Receiver::Stub> stub_;
};

TEST_F(GrpcTransportTest, HostileMessagesFailTheSessionVaultUntouched) {
  std::string data = VolumeBytes(kVolumeBytes, 4);
  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "hosta";
  po.volume = "evil";
  po.version_id = "v1";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  VectorSink good;
  ASSERT_TRUE(ProduceStream(dev, Whole(data), {}, nullptr, po, good).ok());
  const stream::Header header = good.records.front().header();
  std::vector<stream::Record> body(good.records.begin() + 1,
                                   good.records.end());
  ASSERT_TRUE(body[0].has_chunk() && body[1].has_chunk());
  const auto before = vault_.Objects();
  RawClient raw(*certs_, "hosta", server_->port());

  struct Case {
    const char* name;
    std::vector<stream::Record> records;
    grpc::StatusCode want;
  };
  std::vector<Case> cases;
  {
    auto r = body;
    std::swap(r[0], r[1]);
    r.resize(2);
    cases.push_back({"out of order", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  {
    std::vector<stream::Record> r = {body[0]};
    r[0].mutable_chunk()->set_chunk_index(1u << 30);
    cases.push_back(
        {"chunk past the end", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  {
    std::vector<stream::Record> r = {body[0]};
    r[0].mutable_chunk()->set_hash(body[1].chunk().hash());  // lies
    cases.push_back({"lying hash", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  {
    std::vector<stream::Record> r = {body[0]};
    r[0].mutable_chunk()->set_payload(std::string(2 << 20, 'x'));
    cases.push_back(
        {"oversize message", r, grpc::StatusCode::RESOURCE_EXHAUSTED});
  }
  {
    std::vector<stream::Record> r = {body[0], good.records.front()};
    cases.push_back(
        {"header inside upload", r, grpc::StatusCode::INVALID_ARGUMENT});
  }
  int n = 0;
  for (const Case& c : cases) {
    // Each case on its own volume: a session cut by gRPC itself (the
    // oversize message never reaches the service) stays resumable.
    stream::Header h = header;
    h.set_volume_id(absl::StrCat("evil", n++));
    SealHeader(h);
    grpc::Status st = raw.Send(h, c.records);
    EXPECT_EQ(st.error_code(), c.want) << c.name << ": " << st.error_message();
    EXPECT_FALSE(st.error_message().empty()) << c.name;
  }
  // Refused sessions are gone at once; only the oversize one waits for its
  // resume ttl.
  EXPECT_LE(server_->open_sessions(), 1);
  // No version, and no chunk beyond what the valid first record may add.
  for (int i = 0; i < n; ++i) {
    auto v = vault_.vault().ListVersions({"hosta", absl::StrCat("evil", i)});
    EXPECT_TRUE(!v.ok() || v->empty());
  }
  for (const auto& key : vault_.Objects()) {
    if (std::find(before.begin(), before.end(), key) == before.end()) {
      EXPECT_EQ(key.rfind("tenants/hosta/packs/", 0), 0u) << key;
    }
  }
  // The server keeps serving: the honest stream still goes through.
  auto client = Client("hosta");
  auto ok = Backup(*client, data, "hosta", "evil", "v1", nullptr, Whole(data));
  ASSERT_TRUE(ok.ok()) << ok.status();
  auto restored = RemoteRestore(*client, "", "evil", "v1");
  EXPECT_TRUE(restored.ok() && *restored == data);
}

TEST_F(GrpcTransportTest, HostCannotUseAnotherHostsSession) {
  std::string data = VolumeBytes(kVolumeBytes, 9);
  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "hostb";
  po.volume = "db";
  po.version_id = "v1";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  VectorSink recs;
  ASSERT_TRUE(ProduceStream(dev, Whole(data), {}, nullptr, po, recs).ok());
  RawClient b(*certs_, "hostb", server_->port());
  auto id = b.Open(recs.records[0].header());
  ASSERT_TRUE(id.ok()) << id.status();
  const auto before = vault_.Objects();

  // hosta learned b's session id somehow: it can neither probe nor write.
  RawClient a(*certs_, "hosta", server_->port());
  EXPECT_EQ(a.HaveChunks(*id).error_code(), grpc::StatusCode::NOT_FOUND);
  std::vector<stream::Record> body(recs.records.begin() + 1,
                                   recs.records.end());
  EXPECT_EQ(a.Upload(*id, body).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(vault_.Objects(), before);
  // b's own session is intact and completes.
  EXPECT_TRUE(b.Upload(*id, body).ok());
  auto restored = RemoteRestore(*Client("hostb"), "", "db", "v1");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == data);
}

// Fault 5 of issue 13: a sender killed mid-stream (SIGKILL, a crashed
// cbtd) left its session open, and every new run of the same host was
// refused "already has an open session" for the whole resume ttl. The same
// host takes its volume over at once; the old session is aborted and its
// data never becomes a version.
TEST_F(GrpcTransportTest, KilledSenderDoesNotLockItsVolume) {
  std::string data = VolumeBytes(kVolumeBytes, 5);
  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "hosta";
  po.volume = "busy";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  po.version_id = "old";
  VectorSink old_recs;
  ASSERT_TRUE(ProduceStream(dev, Whole(data), {}, nullptr, po, old_recs).ok());
  po.version_id = "new";
  VectorSink new_recs;
  ASSERT_TRUE(ProduceStream(dev, Whole(data), {}, nullptr, po, new_recs).ok());

  // The first run opens its session and sends part of its stream, then
  // stops: killed, as far as the receiver can tell (no FIN, no cancel).
  auto client = Client("hosta");
  auto first = client->NewSink();
  const size_t half = old_recs.records.size() / 2;
  for (size_t i = 0; i < half; ++i) {
    ASSERT_TRUE(first->Put(old_recs.records[i]).ok());
  }
  EXPECT_EQ(server_->open_sessions(), 1);

  // The next run of the same host starts at once and completes.
  const auto start = std::chrono::steady_clock::now();
  auto next_run = Client("hosta");
  auto second = next_run->NewSink();
  for (const auto& r : new_recs.records) {
    absl::Status st = second->Put(r);
    ASSERT_TRUE(st.ok()) << "the volume of a killed sender is locked: " << st;
  }
  ASSERT_TRUE(second->Finish().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(second->committed()->version_id, "new");

  // The old run, should it still be alive, cannot finish: its session was
  // aborted, and it is told so instead of being sent round a retry loop.
  absl::Status st;
  for (size_t i = half; i < old_recs.records.size() && st.ok(); ++i) {
    st = first->Put(old_recs.records[i]);
  }
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("taken over"), absl::string_view::npos) << st;
  EXPECT_FALSE(first->committed().has_value());

  auto versions = vault_.vault().ListVersions({"hosta", "busy"});
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions, std::vector<std::string>{"new"});
  EXPECT_EQ(vault_.commits(), 1);
  EXPECT_EQ(server_->open_sessions(), 0);
  auto restored = RemoteRestore(*client, "", "busy", "new");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == data);
}

// Fault 1 of issue 13, from a client that forges the messages: hosta knows
// only the hash of one of hostb's chunks. It can neither learn that the
// vault holds it, nor commit a version that references it, nor fetch it.
TEST_F(GrpcTransportTest, ForgedChunkRefCannotReadAnotherHostsChunk) {
  auto b = Client("hostb");
  const std::string secret_data = VolumeBytes(kVolumeBytes, 31);
  ASSERT_TRUE(
      Backup(*b, secret_data, "hostb", "db", "v1", nullptr, Whole(secret_data))
          .ok());
  auto b_index = vault_.vault().ReadIndex({"hostb", "db"}, "v1");
  ASSERT_TRUE(b_index.ok()) << b_index.status();
  const ChunkHash secret = b_index->entries[1];
  ASSERT_FALSE(IsZeroEntry(secret));

  // hosta's own one-chunk volume, as the real producer writes its header.
  const std::string zeros(testing::kTestChunkBytes, '\0');
  common::MemoryBlockReader dev(zeros);
  ProducerOptions po;
  po.host = "hosta";
  po.volume = "loot";
  po.version_id = "stolen";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  VectorSink honest;
  ASSERT_TRUE(ProduceStream(dev, Whole(zeros), {}, nullptr, po, honest).ok());
  const auto before = vault_.Objects();

  RawClient a(*certs_, "hosta", server_->port());
  auto id = a.Open(honest.records[0].header());
  ASSERT_TRUE(id.ok()) << id.status();
  auto have = a.Have(*id, {secret});
  ASSERT_TRUE(have.ok()) << have.status();
  EXPECT_EQ(*have, std::vector<bool>{false})
      << "HaveChunks told hosta that the vault holds hostb's chunk";

  stream::Record ref;
  ref.set_required(true);
  ref.mutable_chunk_ref()->set_chunk_index(0);
  ref.mutable_chunk_ref()->set_hash(secret.ToBytes());
  stream::Record trailer;
  trailer.set_required(true);
  trailer.mutable_trailer()->set_chunk_ref_records(1);
  trailer.mutable_trailer()->set_root_hash(
      ComputeRootHash(testing::kTestChunkBytes, testing::kTestChunkBytes,
                      std::vector<ChunkHash>{secret})
          .ToBytes());
  grpc::Status st = a.Upload(*id, {ref, trailer});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << st.error_message();
  EXPECT_NE(st.error_message().find("send its bytes"), std::string::npos)
      << st.error_message();
  auto versions = vault_.vault().ListVersions({"hosta", "loot"});
  EXPECT_TRUE(!versions.ok() || versions->empty());
  EXPECT_EQ(vault_.Objects(), before);
  auto fetched = Client("hosta")->GetChunks("", "loot", "stolen", {secret});
  EXPECT_FALSE(fetched.ok()) << "hosta read hostb's chunk";
}

// GetChunks reads through the caller's tenant (issue 14: no whole index is
// read per call): a real version of hosta's own does not open hostb's
// chunks, and a chunk of hosta's own is served, sealed as stored.
TEST_F(GrpcTransportTest, GetChunksThroughOwnVersionReachesOnlyOwnTenant) {
  auto b = Client("hostb");
  const std::string b_data = VolumeBytes(kVolumeBytes, 41);
  ASSERT_TRUE(
      Backup(*b, b_data, "hostb", "db", "v1", nullptr, Whole(b_data)).ok());
  auto b_index = vault_.vault().ReadIndex({"hostb", "db"}, "v1");
  ASSERT_TRUE(b_index.ok()) << b_index.status();
  const ChunkHash secret = b_index->entries[1];
  auto a = Client("hosta");
  const std::string a_data = VolumeBytes(kVolumeBytes, 42);
  ASSERT_TRUE(
      Backup(*a, a_data, "hosta", "own", "v1", nullptr, Whole(a_data)).ok());

  auto stolen = a->GetChunks("", "own", "v1", {secret});
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kPermissionDenied)
      << stolen.status();
  EXPECT_NE(stolen.status().message().find("is not part of version 'v1'"),
            std::string::npos)
      << stolen.status();
  auto missing = a->GetChunks("", "own", "v9", {secret});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound)
      << missing.status();

  auto a_index = vault_.vault().ReadIndex({"hosta", "own"}, "v1");
  ASSERT_TRUE(a_index.ok()) << a_index.status();
  auto own = a->GetChunks("", "own", "v1", {a_index->entries[1]});
  ASSERT_TRUE(own.ok()) << own.status();
  ASSERT_EQ(own->size(), 1u);
  EXPECT_EQ((*own)[0],
            a_data.substr(testing::kTestChunkBytes, testing::kTestChunkBytes));
}

// Also from issue 13: a receiver that rejects the sender's certificate is
// not "unreachable": the sender stops at once instead of retrying for the
// whole retry budget.
TEST_F(GrpcTransportTest, CertificateRejectionIsNotRetried) {
  const int port = server_->port();
  ClientOptions foreign = TlsClient(*certs_ + "/other", "hosta", port);
  foreign.ca_pem = testing::ReadOrDie(*certs_ + "/ca.crt");
  ClientOptions expired = TlsClient(*certs_, "expired", port);
  for (ClientOptions o : {foreign, expired}) {
    o.retry_budget = std::chrono::minutes(2);  // the default
    auto c = RemoteClient::Create(o);
    ASSERT_TRUE(c.ok()) << c.status();
    const std::string data = VolumeBytes(kVolumeBytes, 12);
    const auto start = std::chrono::steady_clock::now();
    auto r = Backup(**c, data, "hosta", "root", "v1", nullptr, Whole(data));
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated)
        << r.status();
    EXPECT_LT(took, std::chrono::seconds(15)) << r.status();
    EXPECT_NE(r.status().message().find("certificate"), std::string::npos)
        << r.status();
  }
}

TEST_F(GrpcTransportTest, UnresumedSessionExpiresLeavingNoVersion) {
  options_.resume_ttl = std::chrono::milliseconds(300);
  Restart();
  std::string data = VolumeBytes(kVolumeBytes, 6);
  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "hosta";
  po.volume = "gone";
  po.version_id = "v1";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  VectorSink recs;
  ASSERT_TRUE(ProduceStream(dev, Whole(data), {}, nullptr, po, recs).ok());
  {
    auto client = Client("hosta");
    auto sink = client->NewSink();
    for (size_t i = 0; i < 5; ++i) ASSERT_TRUE(sink->Put(recs.records[i]).ok());
    EXPECT_EQ(server_->open_sessions(), 1);
  }  // the sender vanishes mid-stream
  for (int i = 0; i < 100 && server_->open_sessions() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_->open_sessions(), 0);
  EXPECT_TRUE(vault_.vault().ListVersions({"hosta", "gone"})->empty());
  // The volume is free again.
  auto client = Client("hosta");
  EXPECT_TRUE(
      Backup(*client, data, "hosta", "gone", "v1", nullptr, Whole(data)).ok());
}

TEST_F(GrpcTransportTest, CutConnectionsResumeWithinTheWindow) {
  std::string data = VolumeBytes(kVolumeBytes, 7);
  std::vector<std::string> versions;  // the source bytes of v1, v2, v3
  auto direct = Client("hosta");
  for (int round = 1; round <= 3; ++round) {
    if (round > 1) {
      for (size_t i = 0; i < data.size(); i += 3 * testing::kTestChunkBytes) {
        data[i] = static_cast<char>(data[i] ^ (0x11 * round));
      }
    }
    // A fresh proxy per round: every backup meets cuts. Each connection is
    // dropped after 20-300 KB (TLS records and gRPC frames split anywhere),
    // up to 12 times; a round moves more than 300 KB, so it is cut.
    CuttingProxy proxy(server_->port(), 20000, 300000, /*max_cuts=*/12,
                       /*seed=*/round);
    auto client = Client("hosta", proxy.port());
    const std::string id = absl::StrCat("v", round);
    SendProgress p;
    absl::StatusOr<ProduceResult> r;
    if (round == 1) {
      r = Backup(*client, data, "hosta", "cut", id, nullptr, Whole(data), &p);
    } else {
      auto base =
          direct->GetIndex("", "cut", versions.size() == 1 ? "v1" : "v2");
      ASSERT_TRUE(base.ok()) << base.status();
      r = Backup(*client, data, "hosta", "cut", id, &*base, Whole(data), &p);
    }
    ASSERT_TRUE(r.ok()) << "round " << round << ": " << r.status();
    std::cerr << "round " << round << ": " << proxy.cuts() << " cuts, "
              << p.reconnects << " reconnects, " << p.records_resent
              << " records re-sent, " << p.payload_bytes_sent
              << " payload bytes on the wire\n";
    EXPECT_GT(proxy.cuts(), 0) << "round " << round;
    EXPECT_GT(p.reconnects, 0u) << "round " << round;
    // Per reconnect, at most one window of records is sent again.
    EXPECT_LE(p.records_resent, p.reconnects * options_.window_records);
    versions.push_back(data);
  }
  // Each version committed exactly once, and complete.
  EXPECT_EQ(vault_.commits(), 3);
  for (int v = 1; v <= 3; ++v) {
    auto restored =
        RemoteRestore(*direct, "hosta", "cut", absl::StrCat("v", v));
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_TRUE(*restored == versions[v - 1]) << "v" << v;
  }
  EXPECT_EQ(server_->open_sessions(), 0);
}

TEST_F(GrpcTransportTest, IdleStreamIsCutButSessionResumes) {
  options_.idle_timeout = std::chrono::milliseconds(300);
  Restart();
  std::string data = VolumeBytes(kVolumeBytes, 8);
  common::MemoryBlockReader dev(data);
  ProducerOptions po;
  po.host = "hosta";
  po.volume = "idle";
  po.version_id = "v1";
  po.chunk_size_bytes = testing::kTestChunkBytes;
  VectorSink recs;
  ASSERT_TRUE(ProduceStream(dev, Whole(data), {}, nullptr, po, recs).ok());
  auto client = Client("hosta");
  auto sink = client->NewSink();
  const size_t half = recs.records.size() / 2;
  for (size_t i = 0; i < half; ++i)
    ASSERT_TRUE(sink->Put(recs.records[i]).ok());
  // The sender stalls longer than the idle deadline: the server cuts the
  // stream but keeps the session.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(server_->open_sessions(), 1);
  for (size_t i = half; i < recs.records.size(); ++i) {
    ASSERT_TRUE(sink->Put(recs.records[i]).ok()) << i;
  }
  ASSERT_TRUE(sink->Finish().ok());
  EXPECT_GE(sink->progress().reconnects, 1u);
  auto restored = RemoteRestore(*client, "", "idle", "v1");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(*restored == data);
}

TEST_F(GrpcTransportTest, ManyHostsConcurrentlyEachOnItsOwnVolume) {
  constexpr int kSenders = 6;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kSenders);
  for (int i = 0; i < kSenders; ++i) {
    threads.emplace_back([&, i] {
      const std::string host = i % 2 ? "hostb" : "hosta";
      auto client = Client(host);
      const std::string data = VolumeBytes(kVolumeBytes, 100 + i);
      auto r = Backup(*client, data, host, absl::StrCat("vol", i), "v1",
                      nullptr, Whole(data));
      if (!r.ok()) {
        results[i] = r.status();
        return;
      }
      auto restored = RemoteRestore(*client, "", absl::StrCat("vol", i), "v1");
      if (!restored.ok()) {
        results[i] = restored.status();
      } else if (*restored != data) {
        results[i] = absl::DataLossError("restored bytes differ");
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kSenders; ++i) EXPECT_TRUE(results[i].ok()) << results[i];
  EXPECT_EQ(vault_.commits(), kSenders);
}

TEST(TokenBucketTest, BwlimitHoldsTheAverageRate) {
  TokenBucket bucket(1 << 20);  // 1 MiB/s, 1 s of burst
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) bucket.Acquire(256 << 10);  // 2 MiB
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  // 1 MiB of burst, then 1 MiB at 1 MiB/s.
  EXPECT_GE(secs, 0.9);
  EXPECT_LT(secs, 3.0);
  TokenBucket unlimited(0);
  const auto t0 = std::chrono::steady_clock::now();
  unlimited.Acquire(1ull << 40);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

}  // namespace
}  // namespace cbtd::transport
