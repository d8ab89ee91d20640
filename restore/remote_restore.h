// Restore and verify a version held by a receiver over the network, through
// transport::RemoteClient (GetIndex + GetChunks), with the same restore
// logic as the local vault (restore/restore.h: RestoreFromSource).
//
// Nothing from the network is trusted: each index is checked against its
// root hash and every chunk against its content hash here, before it is
// written or counted as good, whatever the client already checked. An
// encrypted version's chunks arrive sealed (the receiver never sees
// plaintext) and are opened and checked with options.key
// (restore/restore.h). Chunks
// are fetched in batches of at most kMaxRemoteBatchChunks distinct hashes
// (the service's limit per GetChunks call) and kRestoreBatchBytes.
//
// `host` empty = the caller's own host (its identity); another host needs
// an admin identity (PERMISSION_DENIED otherwise).
// Thread-safety: as the RemoteClient (shareable); one call per target.
#ifndef CBTD_RESTORE_REMOTE_RESTORE_H_
#define CBTD_RESTORE_REMOTE_RESTORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "restore/restore.h"
#include "transport/grpc_client.h"

namespace cbtd::restore {

inline constexpr size_t kMaxRemoteBatchChunks = 4096;

// The receiver as a VersionSource for one volume of `host` (what
// RestoreRemoteVersion reads through): indexes and chunks re-checked as
// above. `client` must outlive the source.
std::unique_ptr<VersionSource> NewRemoteVersionSource(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume_id);

// RestoreFromSource over the receiver: full, or incremental with
// options.from_version and options.state_path exactly as locally (the
// state file names the version's real host even when `host` is empty).
absl::StatusOr<RestoreStats> RestoreRemoteVersion(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume_id, const std::string& version,
    RestoreTarget& target, const RestoreOptions& options);

struct RemoteVerifyReport {
  std::string host;  // as the index names it
  std::string volume;
  std::string version;
  ChunkHash root_hash;  // checked against the entries
  uint64_t chunks = 0;  // entries in the index
  // Distinct non-zero chunks checked, per window of the index (a chunk
  // used in several windows of 65,536 chunks is checked in each).
  uint64_t chunks_checked = 0;
  uint64_t bytes_checked = 0;  // uncompressed bytes of the intact ones
                               // (sealed bytes if !content_checked)
  // False for an encrypted version verified without its key: only what
  // the receiver's stored checksums prove was checked ("checksums only:
  // give --key-file for full verification").
  bool content_checked = true;
  // Every chunk index whose entry could not be fetched intact, ascending
  // (a damaged hash used at several positions appears once per position).
  std::vector<DamagedChunk> damaged;
  bool ok() const { return damaged.empty(); }
};

// Fetches every distinct non-zero chunk of the version and checks it
// against its hash, streaming the index (ReadIndex) in bounded memory and
// checking it against its root hash at its end. An
// encrypted version's chunks are opened with `key` and checked against
// their keyed ids; without a key only fetched (report.content_checked is
// false). Damage goes in the report; errors are for what prevents the
// check: the index (NOT_FOUND, DATA_LOSS when it does not match its root
// hash), a key that is not the version's (FAILED_PRECONDITION),
// authorization, the network.
absl::StatusOr<RemoteVerifyReport> VerifyRemoteVersion(
    transport::RemoteClient& client, const std::string& host,
    const std::string& volume_id, const std::string& version,
    const std::optional<transport::TenantKey>& key = std::nullopt);

}  // namespace cbtd::restore

#endif  // CBTD_RESTORE_REMOTE_RESTORE_H_
