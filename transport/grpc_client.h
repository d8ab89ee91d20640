// The sender's side of the receiver service (service.proto):
//   - RemoteClient: list versions, fetch an index, fetch chunks (remote
//     restore, hash fallback), prune the caller's own versions, and make a
//     RemoteSink.
//   - RemoteSink: a RecordSink that streams one backup to the receiver with
//     the dedup handshake, a bounded in-flight window, a bandwidth limit,
//     progress callbacks and resume after a cut.
//
// Resume: on a retryable failure (UNAVAILABLE, DEADLINE_EXCEEDED, a stream
// cut) the sink reconnects with exponential backoff and jitter, asks the
// receiver for the next chunk index it needs and re-sends only the records
// still in flight (at most `window_records`). If the receiver lost the
// session (it restarted, or the session expired) Put/Finish return
// UNAVAILABLE "session lost": the caller restarts the backup (chunks that
// already reached the vault are not stored twice). A failure to connect
// because either side refused the other's certificate is UNAUTHENTICATED
// and never retried; a session taken over by a newer run of the same host
// is FAILED_PRECONDITION. A retry_budget of 0 retries nothing.
//
// Thread-safety: a RemoteClient may be shared; a RemoteSink is used by one
// producer thread (the RecordSink contract). Nothing here includes gRPC.
#ifndef CBTD_TRANSPORT_GRPC_CLIENT_H_
#define CBTD_TRANSPORT_GRPC_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"
#include "transport/index_source.h"
#include "transport/receive_backend.h"
#include "transport/record_sink.h"

namespace cbtd::transport {

// Counters a RemoteSink reports as it goes. Bytes are uncompressed chunk
// bytes unless named "payload".
struct SendProgress {
  uint64_t bytes_read = 0;          // chunk bytes handed to the sink
  uint64_t bytes_sent = 0;          // chunk bytes whose payload travelled
  uint64_t bytes_skipped = 0;       // chunk bytes the receiver already had
  uint64_t payload_bytes_sent = 0;  // payload bytes on the wire (with resends)
  uint64_t records_sent = 0;        // first sends
  uint64_t records_resent = 0;      // re-sent after a cut
  uint64_t reconnects = 0;
  double rate_bytes_per_sec = 0;  // bytes_read over the elapsed time
};

struct ClientOptions {
  std::string target;  // "host:port"
  // Plaintext; the server must run --insecure on loopback. The identity is
  // sent as metadata (trusted by such a server).
  bool insecure = false;
  std::string insecure_identity;
  // PEM contents: CA that signed the server cert, our cert and key.
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // Expected name in the server certificate if it differs from the target.
  std::string server_name_override;

  uint32_t window_records = 32;        // the server may lower it
  uint32_t dedup_batch = 64;           // chunks per HaveChunks round trip
  uint64_t bwlimit_bytes_per_sec = 0;  // payload bytes; 0 = unlimited
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(5)};
  // Give up after this long without progress between reconnect attempts.
  std::chrono::milliseconds retry_budget{std::chrono::minutes(2)};
  // Unary and read calls wait for the channel to (re)connect, for at most
  // retry_budget, instead of failing at once while it backs off: for a
  // reader that must see the receiver again as soon as it returns (an NBD
  // export), with errors only after retry_budget.
  bool wait_for_ready = false;
  uint32_t max_message_bytes = 16u << 20;
  std::function<void(const SendProgress&)> on_progress;
};

class RemoteSink : public RecordSink {
 public:
  // Put(Header) opens the session; chunk records are queued for the dedup
  // handshake and sent in order; Put(Trailer) sends the rest and waits for
  // the commit. Errors carry the receiver's status (INVALID_ARGUMENT,
  // FAILED_PRECONDITION, PERMISSION_DENIED ...) or UNAVAILABLE.
  absl::Status Put(const stream::Record& record) override = 0;
  absl::Status Finish() override = 0;
  // After a successful Finish().
  virtual std::optional<CommitResult> committed() const = 0;
  virtual SendProgress progress() const = 0;
};

class RemoteClient {
 public:
  // Validates the options; connects lazily. INVALID_ARGUMENT on bad TLS
  // material combinations.
  static absl::StatusOr<std::unique_ptr<RemoteClient>> Create(
      const ClientOptions& options);
  virtual ~RemoteClient() = default;

  // Empty host = the caller's own (its certificate identity).
  virtual absl::StatusOr<std::vector<VersionSummary>> ListVersions(
      const std::string& host, const std::string& volume_id) = 0;
  virtual absl::StatusOr<VersionIndex> GetIndex(
      const std::string& host, const std::string& volume_id,
      const std::string& version_id) = 0;
  // The same index streamed in bounded memory (ReadIndex); from a receiver
  // without ReadIndex, GetIndex's whole index. UNVERIFIED: the reader
  // checks the entries' count and root hash (stream_producer.h does).
  // Read it promptly: the receiver holds a stream open for it.
  virtual absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndex(
      const std::string& host, const std::string& volume_id,
      const std::string& version_id) = 0;
  // Uncompressed bytes of each hash, in order, checked against their
  // SHA-256; every hash must be a chunk the named version gives access to
  // (the receiver's rule: docs/transport.md). For an encrypted
  // version (its index has a key_fingerprint) the sealed payloads as
  // stored, which this call cannot check: the caller opens them with the
  // key and checks them (transport/sealed_chunk.h).
  virtual absl::StatusOr<std::vector<std::string>> GetChunks(
      const std::string& host, const std::string& volume_id,
      const std::string& version_id, const std::vector<ChunkHash>& hashes) = 0;

  // Applies `rule` to the caller's own volume (the server never prunes
  // another host's versions) and returns the version ids kept and removed.
  // INVALID_ARGUMENT for a rule that keeps nothing, NOT_FOUND for an
  // unknown volume. Chunks are freed later by `cbt-receiver gc`. A real
  // prune is sent once (no retry): a retry after a lost answer would
  // report an incomplete `removed`.
  // `scope` limits it to a group's versions (volume_id empty) or to the
  // volume's versions backed up on their own (receive_backend.h).
  virtual absl::StatusOr<PruneOutcome> Prune(const std::string& volume_id,
                                             const PruneRule& rule,
                                             bool dry_run,
                                             const PruneScope& scope) = 0;
  absl::StatusOr<PruneOutcome> Prune(const std::string& volume_id,
                                     const PruneRule& rule, bool dry_run) {
    return Prune(volume_id, rule, dry_run, PruneScope{});
  }

  // Commits a group version of the caller's own host once its members'
  // versions are (receiver/groups.h). Retried on UNAVAILABLE: a commit
  // is idempotent.
  virtual absl::Status CommitGroup(const GroupCommit& commit) = 0;

  // Holds one of the caller's own versions against pruning for
  // `hold_seconds` (0 releases it); returns the time held until. Retried
  // on UNAVAILABLE: a hold is idempotent.
  virtual absl::StatusOr<int64_t> HoldVersion(const std::string& volume_id,
                                              const std::string& version_id,
                                              uint32_t hold_seconds) = 0;

  virtual std::unique_ptr<RemoteSink> NewSink() = 0;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_GRPC_CLIENT_H_
