#include "transport/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "transport/grpc_status.h"
#include "transport/proto/service.grpc.pb.h"
#include "transport/record_span.h"
#include "transport/stream_index.h"

namespace cbtd::transport {

namespace svc = ::cbtd::service;
using Clock = std::chrono::steady_clock;

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

// Names used as vault path components must be plain.
bool IsPlainName(const std::string& s) {
  if (s.empty() || s.size() > 128 || s[0] == '.') return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
          c == '.' || c == '@')) {
      return false;
    }
  }
  return true;
}

std::string NewSessionId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}

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
  return p;
}

// One session: an uncommitted version being received, possibly detached
// from any stream while the sender reconnects.
//
//   open --Upload attaches--> streaming --stream ends--> detached
//     ^                           |                          |
//     +-------- resume -----------+----- Trailer ok --> committed (result
//   detached too long / record refused --> aborted      kept resume_ttl)
struct Session {
  std::string id;
  std::string owner;  // identity that opened it
  std::string key;    // "host/volume"
  std::string open_token;
  stream::Header header;
  uint64_t chunk_count = 0;

  // Guards the fields below and serializes calls into `backend_session`.
  std::mutex mu;
  std::unique_ptr<UploadSession> backend_session;
  uint64_t next_chunk_index = 0;
  uint64_t records_applied = 0;
  std::optional<CommitResult> committed;
  // Mirrors `committed` for counting without taking `mu`.
  std::atomic<bool> is_committed{false};
  bool dead = false;  // aborted or refused: gone from the table
  grpc::ServerContext* stream = nullptr;  // attached Upload, if any
  Clock::time_point last_activity = Clock::now();
};

}  // namespace

class ReceiverServer::Impl final : public svc::Receiver::Service {
 public:
  Impl(ReceiveBackend* backend, const ServerOptions& options)
      : backend_(backend), options_(options) {}

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
      {
        std::lock_guard l(table_mu_);
        for (auto& [id, s] : sessions_) {
          std::lock_guard sl(s->mu);
          if (s->stream != nullptr) s->stream->TryCancel();
        }
      }
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
      StopReaper();
      std::lock_guard l(table_mu_);
      for (auto& [id, s] : sessions_) {
        std::lock_guard sl(s->mu);
        KillLocked(*s);
      }
      sessions_.clear();
      by_key_.clear();
    });
  }

  void Wait() { server_->Wait(); }
  int port() const { return port_; }
  int open_sessions() {
    std::lock_guard l(table_mu_);
    int n = 0;
    for (const auto& [id, s] : sessions_) {
      if (!s->is_committed.load()) ++n;
    }
    return n;
  }

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
    const std::string key = absl::StrCat(h.source_host(), "/", h.volume_id());

    if (!req->resume_session_id().empty()) {
      auto s = Find(req->resume_session_id(), *who);
      if (!s.ok()) return ToGrpc(s.status());
      std::lock_guard sl((*s)->mu);
      if ((*s)->header.SerializeAsString() != h.SerializeAsString()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "resume: header differs from the one the session "
                            "was opened with");
      }
      (*s)->last_activity = Clock::now();
      FillResume(**s, resp);
      return grpc::Status::OK;
    }

    std::shared_ptr<Session> s;
    {
      std::lock_guard l(table_mu_);
      if (auto it = by_key_.find(key); it != by_key_.end()) {
        auto same = sessions_.find(it->second);
        if (same != sessions_.end() && !req->open_token().empty() &&
            same->second->owner == *who &&
            same->second->open_token == req->open_token() &&
            same->second->header.SerializeAsString() == h.SerializeAsString()) {
          std::lock_guard sl(same->second->mu);
          same->second->last_activity = Clock::now();
          FillResume(*same->second, resp);
          return grpc::Status::OK;
        }
        return grpc::Status(
            grpc::StatusCode::FAILED_PRECONDITION,
            absl::StrCat("volume '", h.volume_id(), "' of host '",
                         h.source_host(), "' already has an open session (",
                         it->second,
                         "); resume it, or wait until it ends or expires "
                         "(resume ttl ",
                         options_.resume_ttl.count() / 1000, " s)"));
      }
      int open = 0;
      for (const auto& [id, other] : sessions_) {
        if (!other->is_committed.load()) ++open;
      }
      if (open >= options_.max_sessions) {
        return grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("receiver holds its maximum of ",
                         options_.max_sessions, " open sessions; retry later"));
      }
      s = std::make_shared<Session>();
      s->id = NewSessionId();
      s->owner = *who;
      s->key = key;
      s->open_token = req->open_token();
      s->header = h;
      s->chunk_count = ChunkCount(h.volume_size_bytes(), h.chunk_size_bytes());
      // Reserve the key before the (slow) backend call so a concurrent open
      // of the same volume is refused.
      by_key_[key] = s->id;
    }
    auto backend_session = backend_->OpenSession(h);
    std::lock_guard l(table_mu_);
    if (!backend_session.ok()) {
      by_key_.erase(key);
      return ToGrpc(backend_session.status());
    }
    s->backend_session = std::move(*backend_session);
    sessions_[s->id] = s;
    std::lock_guard sl(s->mu);
    s->last_activity = Clock::now();
    FillResume(*s, resp);
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
    auto s = Find(req->session_id(), *who);
    if (!s.ok()) return ToGrpc(s.status());
    std::lock_guard sl((*s)->mu);
    if ((*s)->dead || (*s)->committed) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "session is no longer open");
    }
    (*s)->last_activity = Clock::now();
    auto have = (*s)->backend_session->HaveChunks(hashes);
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
    auto found = Find(req.session_id(), *who);
    if (!found.ok()) return ToGrpc(found.status());
    std::shared_ptr<Session> s = *found;
    if (absl::Status st = Attach(*s, ctx); !st.ok()) return ToGrpc(st);
    grpc::Status result = Pump(*s, rw);
    Detach(*s, ctx);
    return result;
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
    auto index = backend_->GetIndex(*host, req->volume_id(), req->version_id());
    if (!index.ok()) return ToGrpc(index.status());
    // A chunk is readable only through a version the caller may read:
    // knowing a hash must not be enough to fetch another host's data.
    std::set<ChunkHash> allowed;
    for (const auto& c : index->entries) {
      if (!IsZeroEntry(c)) allowed.insert(c);
    }
    for (const auto& raw : req->hashes()) {
      auto h = ChunkHash::FromBytes(raw);
      if (!h.ok()) return ToGrpc(h.status());
      if (!allowed.contains(*h)) {
        return grpc::Status(
            grpc::StatusCode::PERMISSION_DENIED,
            absl::StrCat("chunk ", h->ToHex(), " is not part of version '",
                         req->version_id(), "' of ", *host, "/",
                         req->volume_id()));
      }
      auto data = backend_->GetChunk(*h);
      if (!data.ok()) return ToGrpc(data.status());
      svc::GetChunksResponse r;
      r.set_hash(raw);
      r.set_data(std::move(*data));
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
    if (!IsPlainName(req->volume_id())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "prune: volume_id must be a plain name "
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
    auto out = backend_->Prune(*who, req->volume_id(), rule, req->dry_run());
    if (!out.ok()) return ToGrpc(out.status());
    for (const auto& id : out->kept) resp->add_kept(id);
    for (const auto& id : out->removed) resp->add_removed(id);
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

  absl::StatusOr<std::shared_ptr<Session>> Find(const std::string& id,
                                                const std::string& who) {
    std::lock_guard l(table_mu_);
    auto it = sessions_.find(id);
    // Same answer for "missing" and "someone else's": do not reveal ids.
    if (it == sessions_.end() || it->second->owner != who) {
      return absl::NotFoundError(absl::StrCat(
          "no open session '", id,
          "' (expired, aborted, or the receiver restarted); start the "
          "backup again"));
    }
    return it->second;
  }

  void FillResume(const Session& s, svc::OpenSessionResponse* resp) {
    resp->set_session_id(s.id);
    resp->set_next_chunk_index(s.next_chunk_index);
    resp->set_records_applied(s.records_applied);
    if (s.committed) {
      resp->mutable_committed()->set_version_id(s.committed->version_id);
      resp->mutable_committed()->set_root_hash(
          s.committed->root_hash.ToBytes());
    }
  }

  // One stream per session: a resuming sender takes over from a stream the
  // server has not yet noticed is dead.
  absl::Status Attach(Session& s, grpc::ServerContext* ctx) {
    std::unique_lock sl(s.mu);
    if (s.stream != nullptr) {
      s.stream->TryCancel();
      if (!detached_cv_.wait_for(sl, std::chrono::seconds(10),
                                 [&] { return s.stream == nullptr; })) {
        return absl::AbortedError(
            "another stream is still attached to this session");
      }
    }
    if (s.dead) return absl::NotFoundError("session was aborted");
    s.stream = ctx;
    s.last_activity = Clock::now();
    return absl::OkStatus();
  }

  void Detach(Session& s, grpc::ServerContext* ctx) {
    {
      std::lock_guard sl(s.mu);
      if (s.stream == ctx) s.stream = nullptr;
      s.last_activity = Clock::now();
    }
    detached_cv_.notify_all();
  }

  // Receives records until the Trailer (commit) or the stream ends.
  grpc::Status Pump(
      Session& s,
      grpc::ServerReaderWriter<svc::UploadResponse, svc::UploadRequest>* rw) {
    svc::UploadRequest req;
    while (rw->Read(&req)) {
      std::unique_lock sl(s.mu);
      s.last_activity = Clock::now();
      if (s.dead) {
        return grpc::Status(grpc::StatusCode::ABORTED, "session was aborted");
      }
      if (s.committed) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "session already committed");
      }
      const stream::Record& r = req.record();
      if (r.has_trailer()) {
        auto done = s.backend_session->Commit(r.trailer());
        if (!done.ok()) {
          Refuse(s, sl);
          return ToGrpc(done.status());
        }
        s.committed = *done;
        s.is_committed = true;
        s.backend_session.reset();
        svc::UploadResponse resp;
        resp.mutable_committed()->set_version_id(done->version_id);
        resp.mutable_committed()->set_root_hash(done->root_hash.ToBytes());
        sl.unlock();
        ReleaseKey(s);  // id and key are immutable: no Session::mu needed
        rw->Write(resp);
        return grpc::Status::OK;
      }
      absl::Status st = CheckFraming(s, r);
      if (st.ok()) st = s.backend_session->Apply(r);
      if (!st.ok()) {
        Refuse(s, sl);
        return ToGrpc(st);
      }
      s.next_chunk_index = SpanOf(r)->end;
      ++s.records_applied;
      svc::UploadResponse resp;
      resp.mutable_ack()->set_next_chunk_index(s.next_chunk_index);
      resp.mutable_ack()->set_records_applied(s.records_applied);
      sl.unlock();
      if (!rw->Write(resp)) break;
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "stream ended before the trailer; session kept for "
                        "resume");
  }

  absl::Status CheckFraming(const Session& s, const stream::Record& r) {
    if (r.has_header()) {
      return absl::InvalidArgumentError(
          "a Header inside Upload: the header is sent with OpenSession");
    }
    auto span = SpanOf(r);
    if (!span) {
      if (r.body_case() == stream::Record::BODY_NOT_SET && !r.required()) {
        return absl::InvalidArgumentError("empty record");
      }
      return absl::InvalidArgumentError("record kind not understood");
    }
    if (span->end <= span->first) {
      return absl::InvalidArgumentError("empty zero run");
    }
    if (span->first < s.next_chunk_index) {
      return absl::InvalidArgumentError(absl::StrCat(
          "out-of-order record: chunk ", span->first,
          " comes after chunks up to ", s.next_chunk_index, " were applied"));
    }
    if (span->end > s.chunk_count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "record covers chunks [", span->first, ", ", span->end,
          ") past the end of the volume (", s.chunk_count, " chunks)"));
    }
    return absl::OkStatus();
  }

  // A refused record fails the whole session: nothing of it remains.
  void Refuse(Session& s, std::unique_lock<std::mutex>& sl) {
    KillLocked(s);
    sl.unlock();
    std::lock_guard l(table_mu_);
    sessions_.erase(s.id);
    ReleaseKeyTableLocked(s);
  }

  void KillLocked(Session& s) {
    if (s.backend_session) s.backend_session->Abort();
    s.backend_session.reset();
    s.dead = true;
  }

  void ReleaseKey(const Session& s) {
    std::lock_guard l(table_mu_);
    ReleaseKeyTableLocked(s);
  }
  void ReleaseKeyTableLocked(const Session& s) {
    if (auto it = by_key_.find(s.key);
        it != by_key_.end() && it->second == s.id)
      by_key_.erase(it);
  }

  // Cancels idle streams, expires unresumed sessions, forgets old commits.
  void ReaperLoop() {
    std::unique_lock rl(reaper_mu_);
    while (!reaper_stop_) {
      reaper_cv_.wait_for(rl, std::chrono::milliseconds(200));
      rl.unlock();
      const auto now = Clock::now();
      std::vector<std::shared_ptr<Session>> expired;
      {
        std::lock_guard l(table_mu_);
        for (auto it = sessions_.begin(); it != sessions_.end();) {
          Session& s = *it->second;
          // A session busy in the vault is not idle; never wait for it while
          // holding the table.
          std::unique_lock sl(s.mu, std::try_to_lock);
          if (!sl.owns_lock()) {
            ++it;
            continue;
          }
          const auto idle = now - s.last_activity;
          if (s.stream != nullptr) {
            if (idle > options_.idle_timeout) s.stream->TryCancel();
            ++it;
          } else if (idle > options_.resume_ttl) {
            KillLocked(s);
            ReleaseKeyTableLocked(s);
            it = sessions_.erase(it);
          } else {
            ++it;
          }
        }
      }
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

  // Lock order: table_mu_ before Session::mu.
  std::mutex table_mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;  // by id
  std::map<std::string, std::string> by_key_;  // "host/volume" -> id
  std::condition_variable_any detached_cv_;

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
