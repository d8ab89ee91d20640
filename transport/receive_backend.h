// ReceiveBackend: the narrow interface the gRPC receiver service calls to
// reach the vault. The service authenticates and authorizes, validates the
// framing (order, bounds) and translates proto <-> these calls; the backend
// owns the data rules (base must match, hashes must match payloads, atomic
// commit). receiver/ adapts the real vault to it; tests use an in-memory
// fake.
//
// Errors: INVALID_ARGUMENT (bad record), FAILED_PRECONDITION (base missing or
// mismatched, version exists), NOT_FOUND, DATA_LOSS, others pass through.
// Thread-safety: a ReceiveBackend is called from many threads at once; one
// UploadSession is called by one thread at a time (the service serializes).
#ifndef CBTD_TRANSPORT_RECEIVE_BACKEND_H_
#define CBTD_TRANSPORT_RECEIVE_BACKEND_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"
#include "transport/index_source.h"
#include "transport/proto/stream.pb.h"
#include "transport/stream_index.h"

namespace cbtd::transport {

struct VersionSummary {
  std::string source_host;
  std::string volume_id;
  std::string version_id;
  std::string base_version_id;
  ChunkHash root_hash;
  uint64_t volume_size_bytes = 0;
  uint32_t chunk_size_bytes = 0;
  int64_t created_unix_ms = 0;
  std::string key_fingerprint;  // empty: stored in plaintext
  // A member of this group version (both empty for a volume backed up on
  // its own). Listings show a member only once its group version is
  // committed.
  std::string group;
  std::string group_version_id;
};

// The one copy of the fields a VersionIndex and a VersionSummary share,
// each way. IndexWithoutEntries leaves entries and stats empty.
VersionSummary SummaryOf(const IndexMetadata& index);
VersionIndex IndexWithoutEntries(const VersionSummary& summary);

// Retention counts (receiver/retention.h): keep the newest `keep_last`
// versions and the newest of each of the N most recent hours / days / ISO
// weeks / months (UTC) that hold a version. Protected versions are always
// kept. All zero = keeps nothing, which is refused.
struct PruneRule {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  bool empty() const {
    return keep_last == 0 && keep_hourly == 0 && keep_daily == 0 &&
           keep_weekly == 0 && keep_monthly == 0;
  }
};

// Which versions a prune counts and may remove.
struct PruneScope {
  // Non-empty: the group versions of this group (no volume): the rule
  // keeps or removes whole group versions (receiver/retention.h
  // PruneGroup); kept/removed are group version ids.
  std::string group;
  // With a volume: only its versions backed up on their own, never a
  // member of a group version; false: every version (the operator's).
  bool alone = false;
};

// Version ids of one volume, each list in the vault's listing order.
struct PruneOutcome {
  std::vector<std::string> kept;
  std::vector<std::string> removed;
};

// A group's consistency point, committed once every member's version is
// (receiver/groups.h): members whose stream header named this group and
// group version.
struct GroupMemberVersion {
  std::string volume_id;
  std::string version_id;
  ChunkHash root_hash;
  friend bool operator==(const GroupMemberVersion&,
                         const GroupMemberVersion&) = default;
};
struct GroupCommit {
  std::string group;
  std::string group_version_id;
  int64_t created_unix_ms = 0;  // the consistency point's instant
  std::vector<GroupMemberVersion> members;
  friend bool operator==(const GroupCommit&, const GroupCommit&) = default;
};

struct CommitResult {
  std::string version_id;
  ChunkHash root_hash;
  // What the receive stored and what arrived (for metrics and audit; the
  // wire reply carries only the two above).
  IndexStats stats{};
  uint32_t chunk_size_bytes = 0;
};

// One uncommitted version being received.
//
//   OpenSession -> Apply* -> Commit   (version published, session done)
//                        \-> Abort    (nothing of it remains visible)
// Destroying an uncommitted session aborts it.
class UploadSession {
 public:
  virtual ~UploadSession() = default;
  // Which of `hashes` the vault already stores (one bool per hash).
  virtual absl::StatusOr<std::vector<bool>> HaveChunks(
      std::span<const ChunkHash> hashes) = 0;
  // Applies one Chunk / ChunkRef / ZeroRun record. Records come in
  // ascending chunk order; a failed Apply leaves the session unchanged.
  virtual absl::Status Apply(const stream::Record& record) = 0;
  // Checks the trailer against what was applied and publishes the version.
  virtual absl::StatusOr<CommitResult> Commit(
      const stream::Trailer& trailer) = 0;
  // Discards the session; idempotent.
  virtual void Abort() = 0;
};

// A chunk as stored: the uncompressed bytes (verified against the hash),
// or the sealed payload of an encrypted tenant, which only the key's
// holder can open and check.
struct StoredChunkBytes {
  std::string data;
  bool sealed = false;
};

// What GetChunks reads from: Read refuses, PERMISSION_DENIED, a chunk the
// version does not give access to (knowing a hash is not enough to read
// another tenant's data).
class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  virtual absl::StatusOr<StoredChunkBytes> Read(const ChunkHash& hash) = 0;
};

class ReceiveBackend {
 public:
  virtual ~ReceiveBackend() = default;
  // Validates `header` against the vault (base id and root hash, version id
  // not yet used) and starts a session. header.source_host is already
  // authorized by the caller.
  virtual absl::StatusOr<std::unique_ptr<UploadSession>> OpenSession(
      const stream::Header& header) = 0;
  // Committed versions of a host, oldest first; empty volume_id = all.
  virtual absl::StatusOr<std::vector<VersionSummary>> ListVersions(
      const std::string& source_host, const std::string& volume_id) = 0;
  virtual absl::StatusOr<VersionIndex> GetIndex(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) = 0;
  // The same index, streamed (ReadIndex). The default reads it whole
  // through GetIndex; a vault streams it in bounded memory.
  virtual absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndex(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id);
  // The chunks readable through one version of source_host (the caller
  // may read source_host's versions). NOT_FOUND if there is no such
  // version. Opening costs no more than a listing: no whole index is read.
  virtual absl::StatusOr<std::unique_ptr<ChunkSource>> OpenChunks(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) = 0;
  // Applies `rule` to source_host/volume_id: removes the index of every
  // version the rule does not keep (none if `dry_run`); chunks stay until
  // GC. source_host is the authenticated caller. INVALID_ARGUMENT for an
  // empty or negative rule, NOT_FOUND when the volume has no versions.
  virtual absl::StatusOr<PruneOutcome> Prune(const std::string& source_host,
                                             const std::string& volume_id,
                                             const PruneRule& rule,
                                             bool dry_run,
                                             const PruneScope& scope) = 0;
  // Publishes a group version of source_host (the authenticated caller)
  // once its members' versions are committed; until then they are not
  // listed. Errors: receiver/groups.h CommitGroup.
  virtual absl::Status CommitGroup(const std::string& source_host,
                                   const GroupCommit& commit) = 0;
  // Keeps version_id of source_host (the authenticated caller) from being
  // pruned until now + hold_seconds (kMaxHoldSeconds at most; 0 releases
  // it). Returns the time it is held until (0: released). NOT_FOUND for
  // an unknown version.
  virtual absl::StatusOr<int64_t> HoldVersion(const std::string& source_host,
                                              const std::string& volume_id,
                                              const std::string& version_id,
                                              uint32_t hold_seconds) = 0;
};

// The longest hold one HoldVersion call may ask for.
inline constexpr uint32_t kMaxHoldSeconds = 24 * 3600;

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_RECEIVE_BACKEND_H_
