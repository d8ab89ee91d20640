#include "transport/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "transport/grpc_status.h"
#include "transport/names.h"
#include "transport/proto/service.grpc.pb.h"
#include "transport/session_table.h"
#include "transport/stream_index.h"

namespace cbtd::transport {

namespace svc = ::cbtd::service;

bool IsLoopbackAddress(const std::string& addr) {
  // A unix socket never leaves the machine.
  if (addr.rfind("unix:", 0) == 0) return true;
  std::string host = addr;
  if (!addr.empty() && addr.front() == '[') {
    host = addr.substr(1, addr.find(']') - 1);  // "[v6]:port"
  } else if (std::count(addr.begin(), addr.end(), ':') == 1) {
    host = addr.substr(0, addr.find(':'));  // "v4:port", "name:port"
  }                                         // else a bare IPv6 address
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

namespace {

constexpr size_t kMaxHashesPerCall = 4096;
constexpr char kIdentityMetadata[] = "cbtd-identity";

// Names used as vault path components must be plain (transport/names.h).
bool IsPlainName(const std::string& s) { return IsValidName(s); }

svc::VersionInfo ToProto(const VersionSummary& v) {
  svc::VersionInfo p;
  p.set_source_host(v.source_host);
  p.set_volume_id(v.volume_id);
  p.set_version_id(v.version_id);
  p.set_base_version_id(v.base_version_id);
  p.set_root_hash(v.root_hash.ToBytes());
  p.set_volume_size_bytes(v.volume_size_bytes);
  p.set_chunk_size_bytes(v.chunk_size_bytes);
  p.set_created_unix_ms(v.created_unix_ms);
  p.set_key_fingerprint(v.key_fingerprint);
  p.set_group(v.group);
  p.set_group_version_id(v.group_version_id);
  return p;
}

// The Upload call a session's records arrive on.
class GrpcStream : public StreamHandle {
 public:
  explicit GrpcStream(grpc::ServerContext* ctx) : ctx_(ctx) {}
  void Cancel() override { ctx_->TryCancel(); }

 private:
  grpc::ServerContext* const ctx_;
};

void FillOpenResponse(const SessionView& v, svc::OpenSessionResponse* resp) {
  resp->set_session_id(v.id);
  resp->set_next_chunk_index(v.next_chunk_index);
  resp->set_records_applied(v.records_applied);
  if (v.committed) {
    resp->mutable_committed()->set_version_id(v.committed->version_id);
    resp->mutable_committed()->set_root_hash(v.committed->root_hash.ToBytes());
  }
}

}  // namespace

class ReceiverServer::Impl final : public svc::Receiver::Service {
 public:
  Impl(ReceiveBackend* backend, const ServerOptions& options)
      : backend_(backend),
        options_(options),
        sessions_(*backend,
                  SessionLimits{options.max_sessions, options.idle_timeout,
                                options.resume_ttl}) {}

  ~Impl() override { StopReaper(); }

  absl::Status Start() {
    grpc::ServerBuilder builder;
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (options_.insecure) {
      if (!IsLoopbackAddress(options_.listen_address)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--insecure serves plaintext and is allowed only on a loopback "
            "address (127.0.0.1, [::1], localhost), not on ",
            options_.listen_address,
            "; give --tls-cert, --tls-key and --client-ca instead"));
      }
      creds = grpc::InsecureServerCredentials();
    } else {
      if (options_.tls_cert_pem.empty() || options_.tls_key_pem.empty() ||
          options_.client_ca_pem.empty()) {
        return absl::InvalidArgumentError(
            "mutual TLS needs a server certificate, its key and the CA that "
            "signs client certificates (--tls-cert, --tls-key, --client-ca); "
            "plaintext needs --insecure on a loopback address");
      }
      grpc::SslServerCredentialsOptions ssl(
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      ssl.pem_root_certs = options_.client_ca_pem;
      ssl.pem_key_cert_pairs.push_back(
          {options_.tls_key_pem, options_.tls_cert_pem});
      creds = grpc::SslServerCredentials(ssl);
    }
    builder.AddListeningPort(options_.listen_address, creds, &port_);
    builder.RegisterService(this);
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(options_.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
    grpc::ResourceQuota quota("cbt-receiver");
    quota.SetMaxThreads(options_.max_concurrent_rpcs);
    builder.SetResourceQuota(quota);
    // Notice dead peers (a cut without FIN/RST) within ~20 s.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    builder.AddChannelArgument(
        GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options_.listen_address,
                       " (address in use, bad address, or bad TLS material)"));
    }
    reaper_ = std::thread([this] { ReaperLoop(); });
    return absl::OkStatus();
  }

  void Shutdown() {
    std::call_once(shutdown_once_, [this] {
      sessions_.CancelStreams();
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
      StopReaper();
      sessions_.AbortAll();
    });
  }

  void Wait() { server_->Wait(); }
  int port() const { return port_; }
  int open_sessions() { return sessions_.open_sessions(); }

  // --- RPCs --------------------------------------------------------------

  grpc::Status OpenSession(grpc::ServerContext* ctx,
                           const svc::OpenSessionRequest* req,
                           svc::OpenSessionResponse* resp) override {
    auto who = Identify(ctx);
    if (!who.ok()) return ToGrpc(who.status());
    const stream::Header& h = req->header();
    if (h.source_host() != *who) {
      return grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          absl::StrCat("identity '", *who, "' may not write volumes of host '",
                       h.source_host(), "'"));
    }
    if (!IsPlainName(h.volume_id()) || !IsPlainName(h.new_version_id())) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "volume_id and new_version_id must be plain names "
          "([A-Za-z0-9._-], at most 128, not starting with '.')");
    }
    if (h.chunk_size_bytes() == 0 ||
        h.chunk_size_bytes() > options_.max_message_bytes / 2) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("chunk size ", h.chunk_size_bytes(), " is not in (0, ",
                       options_.max_message_bytes / 2,
                       "] bytes (half the max message size)"));
    }
    resp->set_window_records(options_.window_records);
    resp->set_max_message_bytes(options_.max_message_bytes);
    auto view = req->resume_session_id().empty()
                    ? sessions_.Open(*who, h, req->open_token())
                    : sessions_.Resume(*who, req->resume_session_id(), h);
    if (!view.ok()) return ToGrpc(view.status());
    FillOpenResponse(*view, resp);
    return grpc::Status::OK;
  }

  grpc::Status HaveChunks(grpc::ServerContext* ctx,
                          const svc::HaveChunksRequest* req,
                          svc::HaveChunksResponse* resp) override {
    auto who = Identify(ctx);
    if (!who.ok()) return ToGrpc(who.status());
    if (req->hashes_size() > static_cast<int>(kMaxHashesPerCall)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("at most ", kMaxHashesPerCall,
                                       " hashes per HaveChunks call"));
    }
    std::vector<ChunkHash> hashes;
    for (const auto& raw : req->hashes()) {
      auto h = ChunkHash::FromBytes(raw);
      if (!h.ok()) return ToGrpc(h.status());
      hashes.push_back(*h);
    }
    auto have = sessions_.HaveChunks(*who, req->session_id(), hashes);
    if (!have.ok()) return ToGrpc(have.status());
    for (bool b : *have) resp->add_have(b);
    return grpc::Status::OK;
  }

  grpc::Status Upload(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<svc::UploadResponse, svc::UploadRequest>* rw)
      override {
    auto who = Identify(ctx);
    if (!who.ok()) return ToGrpc(who.status());
    svc::UploadRequest req;
    if (!rw->Read(&req)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "no session named");
    }
    GrpcStream stream(ctx);
    auto upload = sessions_.Attach(*who, req.session_id(), &stream);
    if (!upload.ok()) return ToGrpc(upload.status());
    // Receives records until the Trailer (commit) or the stream ends; the
    // session outlives the stream (resume).
    while (rw->Read(&req)) {
      auto view = (*upload)->Apply(req.record());
      if (!view.ok()) return ToGrpc(view.status());
      svc::UploadResponse resp;
      if (view->committed) {
        resp.mutable_committed()->set_version_id(view->committed->version_id);
        resp.mutable_committed()->set_root_hash(
            view->committed->root_hash.ToBytes());
        rw->Write(resp);
        return grpc::Status::OK;
      }
      resp.mutable_ack()->set_next_chunk_index(view->next_chunk_index);
      resp.mutable_ack()->set_records_applied(view->records_applied);
      if (!rw->Write(resp)) break;
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "stream ended before the trailer; session kept for "
                        "resume");
  }

  grpc::Status ListVersions(grpc::ServerContext* ctx,
                            const svc::ListVersionsRequest* req,
                            svc::ListVersionsResponse* resp) override {
    auto host = AuthorizeRead(ctx, req->source_host());
    if (!host.ok()) return ToGrpc(host.status());
    auto versions = backend_->ListVersions(*host, req->volume_id());
    if (!versions.ok()) return ToGrpc(versions.status());
    for (const auto& v : *versions) *resp->add_versions() = ToProto(v);
    return grpc::Status::OK;
  }

  grpc::Status GetIndex(grpc::ServerContext* ctx,
                        const svc::GetIndexRequest* req,
                        svc::GetIndexResponse* resp) override {
    auto host = AuthorizeRead(ctx, req->source_host());
    if (!host.ok()) return ToGrpc(host.status());
    auto index = backend_->GetIndex(*host, req->volume_id(), req->version_id());
    if (!index.ok()) return ToGrpc(index.status());
    *resp->mutable_version() = ToProto(SummaryOf(*index));
    for (const auto& c : index->entries) resp->add_chunk_hashes(c.ToBytes());
    return grpc::Status::OK;
  }

  // The index in bounded memory at both ends: the vault's reader hands
  // out blocks, each one message (service.proto ReadIndexResponse).
  grpc::Status ReadIndex(
      grpc::ServerContext* ctx, const svc::GetIndexRequest* req,
      grpc::ServerWriter<svc::ReadIndexResponse>* writer) override {
    auto host = AuthorizeRead(ctx, req->source_host());
    if (!host.ok()) return ToGrpc(host.status());
    auto index =
        backend_->OpenIndex(*host, req->volume_id(), req->version_id());
    if (!index.ok()) return ToGrpc(index.status());
    svc::ReadIndexResponse head;
    *head.mutable_version() = ToProto(SummaryOf((*index)->metadata()));
    if (!writer->Write(head)) return grpc::Status::CANCELLED;
    for (;;) {
      auto block = (*index)->Next(kIndexBatchEntries);
      if (!block.ok()) return ToGrpc(block.status());
      if (block->empty()) return grpc::Status::OK;
      svc::ReadIndexResponse msg;
      msg.mutable_entries()->reserve(block->size() * ChunkHash::kSize);
      for (const ChunkHash& h : *block) {
        msg.mutable_entries()->append(
            reinterpret_cast<const char*>(h.bytes().data()), ChunkHash::kSize);
      }
      if (!writer->Write(msg)) return grpc::Status::CANCELLED;
    }
  }

  grpc::Status GetChunks(
      grpc::ServerContext* ctx, const svc::GetChunksRequest* req,
      grpc::ServerWriter<svc::GetChunksResponse>* writer) override {
    auto host = AuthorizeRead(ctx, req->source_host());
    if (!host.ok()) return ToGrpc(host.status());
    if (req->hashes_size() > static_cast<int>(kMaxHashesPerCall)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("at most ", kMaxHashesPerCall,
                                       " hashes per GetChunks call"));
    }
    // A chunk is readable only through a version the caller may read:
    // knowing a hash must not be enough to fetch another host's data.
    auto chunks =
        backend_->OpenChunks(*host, req->volume_id(), req->version_id());
    if (!chunks.ok()) return ToGrpc(chunks.status());
    for (const auto& raw : req->hashes()) {
      auto h = ChunkHash::FromBytes(raw);
      if (!h.ok()) return ToGrpc(h.status());
      auto chunk = (*chunks)->Read(*h);
      if (!chunk.ok()) return ToGrpc(chunk.status());
      svc::GetChunksResponse r;
      r.set_hash(raw);
      r.set_data(std::move(chunk->data));
      r.set_sealed(chunk->sealed);
      if (!writer->Write(r)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
    }
    return grpc::Status::OK;
  }

  // Only ever the caller's own namespace: the request has no host field, and
  // admin identities get no exception (reading everything is not a licence
  // to delete).
  grpc::Status Prune(grpc::ServerContext* ctx, const svc::PruneRequest* req,
                     svc::PruneResponse* resp) override {
    auto who = Identify(ctx);
    if (!who.ok()) return ToGrpc(who.status());
    PruneScope scope{req->group(), req->alone()};
    const std::string& name =
        scope.group.empty() ? req->volume_id() : scope.group;
    if (!IsPlainName(name) ||
        (!scope.group.empty() && !req->volume_id().empty())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "prune: give volume_id or group, a plain name "
                          "([A-Za-z0-9._-], at most 128, not starting with "
                          "'.')");
    }
    PruneRule rule;
    rule.keep_last = req->keep_last();
    rule.keep_hourly = req->keep_hourly();
    rule.keep_daily = req->keep_daily();
    rule.keep_weekly = req->keep_weekly();
    rule.keep_monthly = req->keep_monthly();
    if (rule.keep_last < 0 || rule.keep_hourly < 0 || rule.keep_daily < 0 ||
        rule.keep_weekly < 0 || rule.keep_monthly < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "prune: keep_* counts must not be negative");
    }
    if (rule.empty()) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "prune: the rule keeps nothing; set at least one of keep_last, "
          "keep_hourly, keep_daily, keep_weekly, keep_monthly");
    }
    auto out =
        backend_->Prune(*who, req->volume_id(), rule, req->dry_run(), scope);
    if (!out.ok()) return ToGrpc(out.status());
    for (const auto& id : out->kept) resp->add_kept(id);
    for (const auto& id : out->removed) resp->add_removed(id);
    return grpc::Status::OK;
  }

  // Only the caller's own host, as Prune.
  grpc::Status CommitGroup(grpc::ServerContext* ctx,
                           const svc::CommitGroupRequest* req,
                           svc::CommitGroupResponse*) override {
    auto who = Identify(ctx);
    if (!who.ok()) return ToGrpc(who.status());
    GroupCommit commit;
    commit.group = req->group();
    commit.group_version_id = req->group_version_id();
    commit.created_unix_ms = req->created_unix_ms();
    for (const svc::GroupMember& m : req->members()) {
      auto root = ChunkHash::FromBytes(m.root_hash());
      if (!root.ok()) return ToGrpc(root.status());
      commit.members.push_back({m.volume_id(), m.version_id(), *root});
    }
    return ToGrpc(backend_->CommitGroup(*who, commit));
  }

  // Only the caller's own host, as Prune.
  grpc::Status HoldVersion(grpc::ServerContext* ctx,
                           const svc::HoldVersionRequest* req,
                           svc::HoldVersionResponse* resp) override {
    auto who = Identify(ctx);
    if (!who.ok()) return ToGrpc(who.status());
    if (req->hold_seconds() > kMaxHoldSeconds) {
      return ToGrpc(absl::InvalidArgumentError(absl::StrCat(
          "a hold lasts at most ", kMaxHoldSeconds, " s; renew it instead")));
    }
    auto until = backend_->HoldVersion(*who, req->volume_id(),
                                       req->version_id(), req->hold_seconds());
    if (!until.ok()) return ToGrpc(until.status());
    resp->set_held_until_unix(*until);
    return grpc::Status::OK;
  }

 private:
  absl::StatusOr<std::string> Identify(grpc::ServerContext* ctx) {
    std::string id;
    if (options_.insecure) {
      auto md = ctx->client_metadata().find(kIdentityMetadata);
      if (md != ctx->client_metadata().end()) {
        id = std::string(md->second.data(), md->second.size());
      }
    } else {
      auto auth = ctx->auth_context();
      auto cns = auth ? auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)
                      : std::vector<grpc::string_ref>{};
      if (cns.size() == 1) id = std::string(cns[0].data(), cns[0].size());
    }
    if (id.empty()) {
      return absl::UnauthenticatedError(
          options_.insecure
              ? "insecure mode: request carries no cbtd-identity metadata"
              : "client certificate has no subject common name");
    }
    if (!IsPlainName(id)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "identity '", id, "' is not a valid host name for the vault"));
    }
    return id;
  }

  bool IsAdmin(const std::string& id) const {
    for (const auto& a : options_.admin_identities) {
      if (a == id) return true;
    }
    return false;
  }

  // The host whose versions the caller reads; empty = its own.
  absl::StatusOr<std::string> AuthorizeRead(grpc::ServerContext* ctx,
                                            const std::string& host) {
    auto who = Identify(ctx);
    if (!who.ok()) return who.status();
    if (host.empty() || host == *who) return *who;
    if (IsAdmin(*who)) return host;
    return absl::PermissionDeniedError(absl::StrCat(
        "identity '", *who, "' may not read volumes of host '", host, "'"));
  }

  // Cancels idle streams, expires unresumed sessions, forgets old commits
  // (SessionTable::Reap).
  void ReaperLoop() {
    std::unique_lock rl(reaper_mu_);
    while (!reaper_stop_) {
      reaper_cv_.wait_for(rl, std::chrono::milliseconds(200));
      rl.unlock();
      sessions_.Reap();
      rl.lock();
    }
  }

  void StopReaper() {
    {
      std::lock_guard rl(reaper_mu_);
      reaper_stop_ = true;
    }
    reaper_cv_.notify_all();
    if (reaper_.joinable()) reaper_.join();
  }

  ReceiveBackend* const backend_;
  const ServerOptions options_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::once_flag shutdown_once_;

  SessionTable sessions_;

  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;
  std::thread reaper_;
};

absl::StatusOr<std::unique_ptr<ReceiverServer>> ReceiverServer::Start(
    ReceiveBackend* backend, const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(backend, options);
  if (absl::Status st = impl->Start(); !st.ok()) return st;
  return std::unique_ptr<ReceiverServer>(new ReceiverServer(std::move(impl)));
}

ReceiverServer::ReceiverServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
ReceiverServer::~ReceiverServer() { Shutdown(); }
int ReceiverServer::port() const { return impl_->port(); }
void ReceiverServer::Shutdown() { impl_->Shutdown(); }
void ReceiverServer::Wait() { impl_->Wait(); }
int ReceiverServer::open_sessions() const { return impl_->open_sessions(); }

}  // namespace cbtd::transport
