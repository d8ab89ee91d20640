#include "transport/grpc_client.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <deque>
#include <functional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "transport/grpc_status.h"
#include "transport/proto/service.grpc.pb.h"
#include "transport/record_span.h"
#include "transport/tls_probe.h"
#include "transport/token_bucket.h"

namespace cbtd::transport {
namespace {

namespace svc = ::cbtd::service;
using Clock = std::chrono::steady_clock;

constexpr auto kCallTimeout = std::chrono::seconds(60);
// The first dedup handshake of a session may load the host's scope on the
// receiver (every index of the host, once: docs/vault.md), which for a
// host with many versions of a large volume takes longer than a call.
constexpr auto kHaveChunksTimeout = std::chrono::minutes(10);
constexpr size_t kMaxHashesPerCall = 4096;

// Worth reconnecting for: the connection or the stream broke, or the server
// asked us to come back (an idle cut, a stream still being torn down).
bool IsRetryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:  // RST_STREAM from a dying proxy/peer
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

VersionSummary FromProto(const svc::VersionInfo& p) {
  VersionSummary v;
  v.source_host = p.source_host();
  v.volume_id = p.volume_id();
  v.version_id = p.version_id();
  v.base_version_id = p.base_version_id();
  if (auto h = ChunkHash::FromBytes(p.root_hash()); h.ok()) v.root_hash = *h;
  v.volume_size_bytes = p.volume_size_bytes();
  v.chunk_size_bytes = p.chunk_size_bytes();
  v.created_unix_ms = p.created_unix_ms();
  v.key_fingerprint = p.key_fingerprint();
  v.group = p.group();
  v.group_version_id = p.group_version_id();
  return v;
}

class ClientImpl;

class SinkImpl final : public RemoteSink {
 public:
  explicit SinkImpl(ClientImpl* client);
  ~SinkImpl() override;

  absl::Status Put(const stream::Record& record) override;
  absl::Status Finish() override;
  std::optional<CommitResult> committed() const override { return committed_; }
  SendProgress progress() const override { return progress_; }

 private:
  struct InFlight {
    stream::Record record;
    uint64_t end = 0;  // chunk span end; UINT64_MAX for the trailer
  };

  absl::Status PutImpl(const stream::Record& record);
  absl::Status OpenNew();
  absl::Status FlushPending();
  absl::Status SendRecord(stream::Record record);
  absl::Status ReadOne();
  absl::Status OnStreamBroken();
  absl::Status Reconnect(absl::Status why);
  absl::Status ResumeOnce();
  absl::Status StartStream();
  void ApplyAck(uint64_t next_chunk_index);
  absl::StatusOr<std::vector<bool>> HaveChunks(
      const std::vector<std::string>& hashes);
  void Report();

  ClientImpl* const client_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<svc::Receiver::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> stream_ctx_;
  std::unique_ptr<
      grpc::ClientReaderWriter<svc::UploadRequest, svc::UploadResponse>>
      stream_;

  stream::Header header_;
  bool have_header_ = false;
  std::string session_id_;
  uint32_t window_ = 1;
  std::deque<stream::Record> pending_;  // awaiting the dedup handshake
  size_t pending_chunks_ = 0;
  std::deque<InFlight> inflight_;  // sent, not acknowledged
  std::optional<CommitResult> committed_;
  struct {
    uint64_t chunk_records = 0;
    uint64_t payload_bytes = 0;
    uint64_t raw_bytes = 0;
  } converted_;          // Chunk records sent as ChunkRef after HaveChunks
  absl::Status failed_;  // sticky
  TokenBucket bucket_;
  SendProgress progress_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_report_;
  std::mt19937 rng_{std::random_device{}()};
  std::string open_token_ = absl::StrCat(rng_(), "-", rng_(), "-", rng_());
};

svc::GetIndexRequest IndexRequest(const std::string& host,
                                  const std::string& volume_id,
                                  const std::string& version_id) {
  svc::GetIndexRequest req;
  req.set_source_host(host);
  req.set_volume_id(volume_id);
  req.set_version_id(version_id);
  return req;
}

// What any index from a receiver must satisfy before its entries are read.
absl::Status CheckIndexHead(const IndexMetadata& index, const std::string& host,
                            const std::string& volume_id,
                            const std::string& version_id) {
  const auto name = [&] {
    return absl::StrCat("index of ", host, "/", volume_id, "@", version_id);
  };
  if (index.encrypted() && !IsKeyFingerprint(index.key_fingerprint)) {
    return absl::DataLossError(
        absl::StrCat(name(), " names a malformed key fingerprint"));
  }
  if (index.chunk_size_bytes == 0) {
    return absl::DataLossError(absl::StrCat(name(), " has a chunk size of 0"));
  }
  return absl::OkStatus();
}

// A ReadIndex stream: its head was read and checked (CheckIndexHead); the
// entries come one message at a time. Cancelled if dropped unfinished.
class StreamedIndex final : public IndexEntrySource {
 public:
  StreamedIndex(std::unique_ptr<grpc::ClientContext> ctx,
                std::unique_ptr<grpc::ClientReader<svc::ReadIndexResponse>> r,
                VersionIndex meta, std::string what)
      : ctx_(std::move(ctx)),
        reader_(std::move(r)),
        meta_(std::move(meta)),
        what_(std::move(what)) {}
  ~StreamedIndex() override {
    if (ended_) return;
    ctx_->TryCancel();
    reader_->Finish();
  }
  StreamedIndex(const StreamedIndex&) = delete;
  StreamedIndex& operator=(const StreamedIndex&) = delete;

  const IndexMetadata& metadata() const override { return meta_; }

  absl::StatusOr<std::span<const ChunkHash>> Next(size_t max) override {
    if (!status_.ok()) return status_;
    while (next_ == block_.size()) {
      if (ended_) return std::span<const ChunkHash>();
      if (absl::Status s = ReadBlock(); !s.ok()) {
        status_ = s;
        return s;
      }
    }
    const size_t n = std::min(max, block_.size() - next_);
    std::span<const ChunkHash> out(block_.data() + next_, n);
    next_ += n;
    return out;
  }

 private:
  absl::Status ReadBlock() {
    svc::ReadIndexResponse msg;
    if (!reader_->Read(&msg)) {
      ended_ = true;
      absl::Status st = FromGrpc(reader_->Finish());
      if (st.ok()) return st;
      return absl::Status(st.code(), absl::StrCat("reading the ", what_, ": ",
                                                  std::string(st.message())));
    }
    const std::string& raw = msg.entries();
    if (raw.size() % ChunkHash::kSize != 0) {
      return absl::DataLossError(
          absl::StrCat(what_, " arrived with a partial entry"));
    }
    block_.resize(raw.size() / ChunkHash::kSize);
    for (size_t i = 0; i < block_.size(); ++i) {
      std::array<uint8_t, ChunkHash::kSize> b;
      std::memcpy(b.data(), raw.data() + i * ChunkHash::kSize, b.size());
      block_[i] = ChunkHash(b);
    }
    next_ = 0;
    return absl::OkStatus();
  }

  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<svc::ReadIndexResponse>> reader_;
  const VersionIndex meta_;
  const std::string what_;
  std::vector<ChunkHash> block_;
  size_t next_ = 0;
  bool ended_ = false;
  absl::Status status_;
};

class ClientImpl final : public RemoteClient {
  using RemoteClient::Prune;

 public:
  explicit ClientImpl(const ClientOptions& options) : options_(options) {
    if (options_.insecure) {
      creds_ = grpc::InsecureChannelCredentials();
    } else {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = options_.ca_pem;
      ssl.pem_private_key = options_.key_pem;
      ssl.pem_cert_chain = options_.cert_pem;
      creds_ = grpc::SslCredentials(ssl);
    }
    channel_ = NewChannel();
    stub_ = svc::Receiver::NewStub(channel_);
  }

  const ClientOptions& options() const { return options_; }

  // A fresh channel per reconnect: its own backoff state is not ours to
  // wait for.
  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is also the connect (TCP +
    // TLS handshake) timeout, which must stay generous for slow links.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // Channels must not be shared between sinks through gRPC's subchannel
    // pool, or a reconnect would reuse the broken connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (!options_.server_name_override.empty()) {
      args.SetSslTargetNameOverride(options_.server_name_override);
    }
    return grpc::CreateCustomChannel(options_.target, creds_, args);
  }

  void Prepare(grpc::ClientContext& ctx, bool with_deadline = true) {
    if (options_.insecure) {
      ctx.AddMetadata("cbtd-identity", options_.insecure_identity);
    }
    if (!with_deadline) return;
    std::chrono::milliseconds timeout = kCallTimeout;
    if (options_.wait_for_ready) {
      ctx.set_wait_for_ready(true);
      timeout = std::min(timeout, options_.retry_budget);
    }
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  }

  // A failure to connect is UNAVAILABLE whether the network failed or a
  // side refused the other's certificate (with TLS 1.3 the server's
  // verdict on ours comes after our handshake is done: "Socket closed").
  // A refused certificate does not heal by retrying, so after a failed
  // connect one TLS handshake of our own tells them apart
  // (tls_probe.h): UNAUTHENTICATED then, `st` otherwise.
  absl::Status Explain(absl::Status st) const {
    if (options_.insecure || st.code() != absl::StatusCode::kUnavailable ||
        st.message().find("failed to connect") == absl::string_view::npos) {
      return st;
    }
    absl::Status probe = ProbeTlsRejection(
        {options_.target, options_.server_name_override, options_.ca_pem,
         options_.cert_pem, options_.key_pem},
        std::chrono::seconds(2));
    return probe.ok() ? st : probe;
  }

  // Reads are idempotent: transport failures are retried with backoff
  // within the retry budget.
  absl::Status Retrying(const std::function<absl::Status()>& call) {
    auto delay = options_.backoff_initial;
    const auto give_up = Clock::now() + options_.retry_budget;
    for (;;) {
      absl::Status st = Explain(call());
      if (st.code() != absl::StatusCode::kUnavailable &&
          st.code() != absl::StatusCode::kDeadlineExceeded) {
        return st;
      }
      if (Clock::now() + delay > give_up) return st;
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, options_.backoff_max);
    }
  }

  absl::StatusOr<std::vector<VersionSummary>> ListVersions(
      const std::string& host, const std::string& volume_id) override {
    svc::ListVersionsRequest req;
    req.set_source_host(host);
    req.set_volume_id(volume_id);
    svc::ListVersionsResponse resp;
    absl::Status st = Retrying([&] {
      grpc::ClientContext ctx;
      Prepare(ctx);
      return FromGrpc(stub_->ListVersions(&ctx, req, &resp));
    });
    if (!st.ok()) return st;
    std::vector<VersionSummary> out;
    for (const auto& v : resp.versions()) out.push_back(FromProto(v));
    return out;
  }

  absl::StatusOr<VersionIndex> GetIndex(
      const std::string& host, const std::string& volume_id,
      const std::string& version_id) override {
    const svc::GetIndexRequest req = IndexRequest(host, volume_id, version_id);
    svc::GetIndexResponse resp;
    absl::Status st = Retrying([&] {
      grpc::ClientContext ctx;
      Prepare(ctx);
      return FromGrpc(stub_->GetIndex(&ctx, req, &resp));
    });
    if (!st.ok()) return st;
    VersionIndex index = IndexWithoutEntries(FromProto(resp.version()));
    for (const auto& raw : resp.chunk_hashes()) {
      auto h = ChunkHash::FromBytes(raw);
      if (!h.ok()) return h.status();
      index.entries.push_back(*h);
    }
    // Only an index whose entries hash to its root is usable as a base or
    // for a restore.
    if (absl::Status s = CheckIndexHead(index, host, volume_id, version_id);
        !s.ok()) {
      return s;
    }
    if (index.entries.size() !=
            ChunkCount(index.volume_size_bytes, index.chunk_size_bytes) ||
        ComputeRootHash(index.volume_size_bytes, index.chunk_size_bytes,
                        index.entries) != index.root_hash) {
      return absl::DataLossError(absl::StrCat("index of ", host, "/", volume_id,
                                              "@", version_id,
                                              " does not match its root hash"));
    }
    return index;
  }

  absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndex(
      const std::string& host, const std::string& volume_id,
      const std::string& version_id) override {
    const svc::GetIndexRequest req = IndexRequest(host, volume_id, version_id);
    const std::string what =
        absl::StrCat("index of ", host.empty() ? "" : host + "/", volume_id,
                     "@", version_id);
    std::unique_ptr<IndexEntrySource> out;
    absl::Status st = Retrying([&]() -> absl::Status {
      auto ctx = std::make_unique<grpc::ClientContext>();
      Prepare(*ctx, /*with_deadline=*/false);
      auto reader = stub_->ReadIndex(ctx.get(), req);
      svc::ReadIndexResponse head;
      if (!reader->Read(&head)) {
        absl::Status fst = FromGrpc(reader->Finish());
        return fst.ok() ? absl::DataLossError(what + " arrived empty") : fst;
      }
      VersionIndex meta = IndexWithoutEntries(FromProto(head.version()));
      if (absl::Status s = CheckIndexHead(meta, host, volume_id, version_id);
          !s.ok()) {
        ctx->TryCancel();
        reader->Finish();
        return s;
      }
      out = std::make_unique<StreamedIndex>(std::move(ctx), std::move(reader),
                                            std::move(meta), what);
      return absl::OkStatus();
    });
    // A receiver from before ReadIndex: the index whole.
    if (absl::IsUnimplemented(st)) {
      absl::StatusOr<VersionIndex> index =
          GetIndex(host, volume_id, version_id);
      if (!index.ok()) return index.status();
      return SourceOf(*std::move(index));
    }
    if (!st.ok()) return st;
    return out;
  }

  absl::StatusOr<std::vector<std::string>> GetChunks(
      const std::string& host, const std::string& volume_id,
      const std::string& version_id,
      const std::vector<ChunkHash>& hashes) override {
    std::vector<std::string> out;
    out.reserve(hashes.size());
    for (size_t start = 0; start < hashes.size(); start += kMaxHashesPerCall) {
      const size_t end = std::min(hashes.size(), start + kMaxHashesPerCall);
      svc::GetChunksRequest req;
      req.set_source_host(host);
      req.set_volume_id(volume_id);
      req.set_version_id(version_id);
      for (size_t i = start; i < end; ++i) req.add_hashes(hashes[i].ToBytes());
      std::vector<std::string> batch;
      absl::Status st = Retrying([&]() -> absl::Status {
        batch.clear();
        grpc::ClientContext ctx;
        Prepare(ctx);
        auto reader = stub_->GetChunks(&ctx, req);
        svc::GetChunksResponse resp;
        while (reader->Read(&resp)) {
          const size_t i = start + batch.size();
          if (i >= end) {
            ctx.TryCancel();
            reader->Finish();
            return absl::DataLossError("receiver sent more chunks than asked");
          }
          const auto* p = reinterpret_cast<const uint8_t*>(resp.data().data());
          // Never trust bytes for a restore without checking their address.
          // A sealed chunk can only be checked by whoever holds the key:
          // the caller (restore/remote_restore.h) opens and checks it.
          if (!resp.sealed() &&
              ChunkHash::Sha256({p, resp.data().size()}) != hashes[i]) {
            ctx.TryCancel();
            reader->Finish();
            return absl::DataLossError(absl::StrCat(
                "chunk ", hashes[i].ToHex(), " arrived with other content"));
          }
          batch.push_back(std::move(*resp.mutable_data()));
        }
        if (auto fst = FromGrpc(reader->Finish()); !fst.ok()) return fst;
        if (start + batch.size() != end) {
          return absl::DataLossError("receiver sent fewer chunks than asked");
        }
        return absl::OkStatus();
      });
      if (!st.ok()) return st;
      for (auto& b : batch) out.push_back(std::move(b));
    }
    return out;
  }

  absl::StatusOr<PruneOutcome> Prune(const std::string& volume_id,
                                     const PruneRule& rule, bool dry_run,
                                     const PruneScope& scope) override {
    svc::PruneRequest req;
    req.set_volume_id(volume_id);
    req.set_group(scope.group);
    req.set_alone(scope.alone);
    req.set_keep_last(rule.keep_last);
    req.set_keep_hourly(rule.keep_hourly);
    req.set_keep_daily(rule.keep_daily);
    req.set_keep_weekly(rule.keep_weekly);
    req.set_keep_monthly(rule.keep_monthly);
    req.set_dry_run(dry_run);
    svc::PruneResponse resp;
    auto call = [&] {
      grpc::ClientContext ctx;
      Prepare(ctx);
      return FromGrpc(stub_->Prune(&ctx, req, &resp));
    };
    // A dry run changes nothing and may be repeated; a real one is sent
    // once so its answer is the whole truth about what it removed.
    absl::Status st = dry_run ? Retrying(call) : call();
    if (!st.ok()) return st;
    PruneOutcome out;
    out.kept.assign(resp.kept().begin(), resp.kept().end());
    out.removed.assign(resp.removed().begin(), resp.removed().end());
    return out;
  }

  absl::Status CommitGroup(const GroupCommit& commit) override {
    svc::CommitGroupRequest req;
    req.set_group(commit.group);
    req.set_group_version_id(commit.group_version_id);
    req.set_created_unix_ms(commit.created_unix_ms);
    for (const GroupMemberVersion& m : commit.members) {
      svc::GroupMember* p = req.add_members();
      p->set_volume_id(m.volume_id);
      p->set_version_id(m.version_id);
      p->set_root_hash(m.root_hash.ToBytes());
    }
    return Retrying([&] {
      grpc::ClientContext ctx;
      Prepare(ctx);
      svc::CommitGroupResponse resp;
      return FromGrpc(stub_->CommitGroup(&ctx, req, &resp));
    });
  }

  absl::StatusOr<int64_t> HoldVersion(const std::string& volume_id,
                                      const std::string& version_id,
                                      uint32_t hold_seconds) override {
    svc::HoldVersionRequest req;
    req.set_volume_id(volume_id);
    req.set_version_id(version_id);
    req.set_hold_seconds(hold_seconds);
    svc::HoldVersionResponse resp;
    absl::Status st = Retrying([&] {
      grpc::ClientContext ctx;
      Prepare(ctx);
      return FromGrpc(stub_->HoldVersion(&ctx, req, &resp));
    });
    if (!st.ok()) return st;
    return resp.held_until_unix();
  }

  std::unique_ptr<RemoteSink> NewSink() override {
    return std::make_unique<SinkImpl>(this);
  }

 private:
  ClientOptions options_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<svc::Receiver::Stub> stub_;
};

SinkImpl::SinkImpl(ClientImpl* client)
    : client_(client), bucket_(client->options().bwlimit_bytes_per_sec) {}

SinkImpl::~SinkImpl() {
  if (stream_ctx_) stream_ctx_->TryCancel();
}

absl::Status SinkImpl::Put(const stream::Record& record) {
  if (!failed_.ok()) return failed_;
  absl::Status st = PutImpl(record);
  if (!st.ok()) {
    failed_ = st;
    if (stream_ctx_) stream_ctx_->TryCancel();
  }
  return st;
}

absl::Status SinkImpl::PutImpl(const stream::Record& r) {
  const uint32_t chunk_bytes = header_.chunk_size_bytes();
  switch (r.body_case()) {
    case stream::Record::kHeader:
      if (have_header_) {
        return absl::FailedPreconditionError("second Header in one stream");
      }
      header_ = r.header();
      have_header_ = true;
      return OpenNew();
    case stream::Record::kChunk:
      progress_.bytes_read += r.chunk().raw_size_bytes();
      ++pending_chunks_;
      break;
    case stream::Record::kChunkRef:
      progress_.bytes_read += chunk_bytes;
      progress_.bytes_skipped += chunk_bytes;
      break;
    case stream::Record::kZeroRun:
      progress_.bytes_read += r.zero_run().chunk_count() * chunk_bytes;
      progress_.bytes_skipped += r.zero_run().chunk_count() * chunk_bytes;
      break;
    case stream::Record::kTrailer: {
      if (!have_header_) return absl::FailedPreconditionError("no Header");
      if (auto st = FlushPending(); !st.ok()) return st;
      if (committed_) return absl::OkStatus();
      // The trailer counts what travels: chunks the handshake turned into
      // references move from the chunk counts to the reference count.
      stream::Record t = r;
      stream::Trailer* tr = t.mutable_trailer();
      if (tr->chunk_records() < converted_.chunk_records ||
          tr->payload_bytes() < converted_.payload_bytes ||
          tr->raw_bytes() < converted_.raw_bytes) {
        return absl::InvalidArgumentError(
            "trailer counts fewer chunks than the stream carried");
      }
      tr->set_chunk_records(tr->chunk_records() - converted_.chunk_records);
      tr->set_chunk_ref_records(tr->chunk_ref_records() +
                                converted_.chunk_records);
      tr->set_payload_bytes(tr->payload_bytes() - converted_.payload_bytes);
      tr->set_raw_bytes(tr->raw_bytes() - converted_.raw_bytes);
      if (auto st = SendRecord(std::move(t)); !st.ok()) return st;
      while (!committed_) {
        if (auto st = ReadOne(); !st.ok()) return st;
      }
      Report();
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError("record kind not understood");
  }
  if (!have_header_) return absl::FailedPreconditionError("no Header");
  pending_.push_back(r);
  if (pending_chunks_ >= client_->options().dedup_batch) return FlushPending();
  return absl::OkStatus();
}

absl::Status SinkImpl::Finish() {
  if (!failed_.ok()) return failed_;
  if (!committed_) {
    return absl::FailedPreconditionError(
        "Finish() before the receiver committed (no Trailer sent?)");
  }
  if (stream_) {
    stream_->WritesDone();
    stream_->Finish();  // the server already answered; status is moot
    stream_.reset();
  }
  return absl::OkStatus();
}

absl::Status SinkImpl::OpenNew() {
  absl::Status last;
  auto delay = client_->options().backoff_initial;
  const auto give_up = Clock::now() + client_->options().retry_budget;
  for (;;) {
    channel_ = client_->NewChannel();
    stub_ = svc::Receiver::NewStub(channel_);
    grpc::ClientContext ctx;
    client_->Prepare(ctx);
    svc::OpenSessionRequest req;
    *req.mutable_header() = header_;
    req.set_open_token(open_token_);
    svc::OpenSessionResponse resp;
    last = client_->Explain(FromGrpc(stub_->OpenSession(&ctx, req, &resp)));
    if (last.ok()) {
      session_id_ = resp.session_id();
      window_ = std::max<uint32_t>(
          1,
          std::min(client_->options().window_records, resp.window_records()));
      return StartStream();
    }
    // A refusal (bad base, no permission, certificate) is final.
    if (last.code() != absl::StatusCode::kUnavailable &&
        last.code() != absl::StatusCode::kDeadlineExceeded) {
      return last;
    }
    if (Clock::now() + delay > give_up) break;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, client_->options().backoff_max);
  }
  return absl::UnavailableError(absl::StrCat("cannot reach receiver ",
                                             client_->options().target, ": ",
                                             std::string(last.message())));
}

absl::Status SinkImpl::StartStream() {
  stream_ctx_ = std::make_unique<grpc::ClientContext>();
  client_->Prepare(*stream_ctx_, /*with_deadline=*/false);
  stream_ = stub_->Upload(stream_ctx_.get());
  svc::UploadRequest first;
  first.set_session_id(session_id_);
  if (!stream_->Write(first)) return OnStreamBroken();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<bool>> SinkImpl::HaveChunks(
    const std::vector<std::string>& hashes) {
  for (;;) {
    grpc::ClientContext ctx;
    client_->Prepare(ctx, /*with_deadline=*/false);
    ctx.set_deadline(std::chrono::system_clock::now() + kHaveChunksTimeout);
    svc::HaveChunksRequest req;
    req.set_session_id(session_id_);
    for (const auto& h : hashes) req.add_hashes(h);
    svc::HaveChunksResponse resp;
    absl::Status st = FromGrpc(stub_->HaveChunks(&ctx, req, &resp));
    if (st.ok()) {
      if (resp.have_size() != static_cast<int>(hashes.size())) {
        return absl::InternalError("HaveChunks answered the wrong count");
      }
      return std::vector<bool>(resp.have().begin(), resp.have().end());
    }
    if (!IsRetryable(st)) return st;
    if (auto r = Reconnect(st); !r.ok()) return r;
    if (committed_) return std::vector<bool>(hashes.size(), true);
  }
}

absl::Status SinkImpl::FlushPending() {
  if (pending_.empty()) return absl::OkStatus();
  std::vector<std::string> hashes;
  for (const auto& r : pending_) {
    if (r.has_chunk()) hashes.push_back(r.chunk().hash());
  }
  std::vector<bool> have;
  if (!hashes.empty()) {
    auto h = HaveChunks(hashes);
    if (!h.ok()) return h.status();
    have = std::move(*h);
  }
  size_t k = 0;
  while (!pending_.empty()) {
    stream::Record r = std::move(pending_.front());
    pending_.pop_front();
    if (r.has_chunk()) {
      const uint32_t raw = r.chunk().raw_size_bytes();
      if (have[k++]) {
        // The receiver already stores this content: send the address only.
        stream::Record ref;
        ref.mutable_chunk_ref()->set_chunk_index(r.chunk().chunk_index());
        ref.mutable_chunk_ref()->set_hash(r.chunk().hash());
        ++converted_.chunk_records;
        converted_.payload_bytes += r.chunk().payload().size();
        converted_.raw_bytes += raw;
        r = std::move(ref);
        progress_.bytes_skipped += raw;
      } else {
        progress_.bytes_sent += raw;
      }
    }
    if (auto st = SendRecord(std::move(r)); !st.ok()) return st;
  }
  pending_chunks_ = 0;
  Report();
  return absl::OkStatus();
}

absl::Status SinkImpl::SendRecord(stream::Record record) {
  while (inflight_.size() >= window_ && !committed_) {
    if (auto st = ReadOne(); !st.ok()) return st;
  }
  if (committed_) return absl::OkStatus();
  const uint64_t payload =
      record.has_chunk() ? record.chunk().payload().size() : 0;
  bucket_.Acquire(payload);
  auto span = SpanOf(record);
  inflight_.push_back({record, span ? span->end : UINT64_MAX});
  ++progress_.records_sent;
  progress_.payload_bytes_sent += payload;
  svc::UploadRequest req;
  *req.mutable_record() = std::move(record);
  if (!stream_->Write(req)) return OnStreamBroken();
  return absl::OkStatus();
}

absl::Status SinkImpl::ReadOne() {
  svc::UploadResponse resp;
  if (!stream_->Read(&resp)) return OnStreamBroken();
  if (resp.has_ack()) {
    ApplyAck(resp.ack().next_chunk_index());
  } else if (resp.has_committed()) {
    auto h = ChunkHash::FromBytes(resp.committed().root_hash());
    committed_ =
        CommitResult{resp.committed().version_id(), h.ok() ? *h : ChunkHash()};
    inflight_.clear();
  }
  return absl::OkStatus();
}

void SinkImpl::ApplyAck(uint64_t next_chunk_index) {
  while (!inflight_.empty() && inflight_.front().end <= next_chunk_index) {
    inflight_.pop_front();
  }
}

absl::Status SinkImpl::OnStreamBroken() {
  absl::Status st = FromGrpc(stream_->Finish());
  stream_.reset();
  stream_ctx_.reset();
  if (st.ok()) st = absl::UnavailableError("stream closed by the receiver");
  if (!IsRetryable(st)) return st;
  return Reconnect(st);
}

absl::Status SinkImpl::Reconnect(absl::Status why) {
  auto delay = client_->options().backoff_initial;
  const auto give_up = Clock::now() + client_->options().retry_budget;
  for (;;) {
    if (Clock::now() + delay > give_up) {
      return absl::UnavailableError(
          absl::StrCat("gave up reconnecting to ", client_->options().target,
                       ": ", std::string(why.message())));
    }
    // Full jitter: many hosts cut by one network blip do not come back in
    // lockstep.
    std::uniform_int_distribution<int64_t> jitter(delay.count() / 2,
                                                  delay.count());
    std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng_)));
    delay = std::min(delay * 2, client_->options().backoff_max);
    ++progress_.reconnects;
    absl::Status st = client_->Explain(ResumeOnce());
    if (st.ok()) return st;
    if (st.code() == absl::StatusCode::kNotFound) {
      return absl::UnavailableError(
          absl::StrCat("session lost: ", std::string(st.message())));
    }
    if (!IsRetryable(st)) return st;
    why = st;
  }
}

absl::Status SinkImpl::ResumeOnce() {
  if (stream_ctx_) stream_ctx_->TryCancel();
  stream_.reset();
  stream_ctx_.reset();
  channel_ = client_->NewChannel();
  stub_ = svc::Receiver::NewStub(channel_);
  grpc::ClientContext ctx;
  client_->Prepare(ctx);
  svc::OpenSessionRequest req;
  *req.mutable_header() = header_;
  req.set_resume_session_id(session_id_);
  svc::OpenSessionResponse resp;
  if (auto st = FromGrpc(stub_->OpenSession(&ctx, req, &resp)); !st.ok()) {
    return st;
  }
  if (resp.has_committed()) {
    auto h = ChunkHash::FromBytes(resp.committed().root_hash());
    committed_ =
        CommitResult{resp.committed().version_id(), h.ok() ? *h : ChunkHash()};
    inflight_.clear();
    return absl::OkStatus();
  }
  ApplyAck(resp.next_chunk_index());
  stream_ctx_ = std::make_unique<grpc::ClientContext>();
  client_->Prepare(*stream_ctx_, /*with_deadline=*/false);
  stream_ = stub_->Upload(stream_ctx_.get());
  svc::UploadRequest first;
  first.set_session_id(session_id_);
  if (!stream_->Write(first)) {
    return absl::UnavailableError("stream broke while resuming");
  }
  // Re-send what the receiver has not applied: at most the window.
  for (const auto& f : inflight_) {
    const uint64_t payload =
        f.record.has_chunk() ? f.record.chunk().payload().size() : 0;
    bucket_.Acquire(payload);
    ++progress_.records_resent;
    progress_.payload_bytes_sent += payload;
    svc::UploadRequest r;
    *r.mutable_record() = f.record;
    if (!stream_->Write(r)) {
      return absl::UnavailableError("stream broke while re-sending");
    }
  }
  return absl::OkStatus();
}

void SinkImpl::Report() {
  const auto& cb = client_->options().on_progress;
  const auto now = Clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  if (secs > 0) progress_.rate_bytes_per_sec = progress_.bytes_read / secs;
  if (cb) cb(progress_);
  last_report_ = now;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RemoteClient>> RemoteClient::Create(
    const ClientOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("no receiver address (--to HOST:PORT)");
  }
  if (options.insecure) {
    if (options.insecure_identity.empty()) {
      return absl::InvalidArgumentError(
          "insecure mode needs an identity (the host name)");
    }
  } else if (options.ca_pem.empty() || options.cert_pem.empty() ||
             options.key_pem.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs --ca, --tls-cert and --tls-key (or --insecure "
        "against a loopback receiver)");
  }
  return std::unique_ptr<RemoteClient>(new ClientImpl(options));
}

}  // namespace cbtd::transport
