// VaultServiceBackend: the vault behind the gRPC receiver service. It adapts
// receiver::Vault and receiver::ReceiveSession to transport::ReceiveBackend;
// authorization and framing are the service's job, data rules the
// session's.
//
// Thread-safety: as the Vault (the local store is fully thread-safe).
#ifndef CBTD_RECEIVER_VAULT_SERVICE_BACKEND_H_
#define CBTD_RECEIVER_VAULT_SERVICE_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "receiver/vault.h"
#include "transport/receive_backend.h"

namespace cbtd::receiver {

class VaultServiceBackend : public transport::ReceiveBackend {
 public:
  // `vault` must outlive the backend.
  explicit VaultServiceBackend(Vault& vault) : vault_(vault) {}

  absl::StatusOr<std::unique_ptr<transport::UploadSession>> OpenSession(
      const stream::Header& header) override;
  absl::StatusOr<std::vector<transport::VersionSummary>> ListVersions(
      const std::string& source_host, const std::string& volume_id) override;
  absl::StatusOr<VersionIndex> GetIndex(const std::string& source_host,
                                        const std::string& volume_id,
                                        const std::string& version_id) override;
  // Streams the index from the vault (IndexReader): bounded memory.
  absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> OpenIndex(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) override;
  // Format 2: any chunk of the host's tenant (the unit of sharing: a
  // tenant's hosts dedup against each other), the version's index unread.
  // Format 1 (one chunk space for all hosts): only the version's chunks,
  // from a set of its whole index.
  absl::StatusOr<std::unique_ptr<transport::ChunkSource>> OpenChunks(
      const std::string& source_host, const std::string& volume_id,
      const std::string& version_id) override;
  // receiver::Prune on one volume, or PruneGroup on a group (scope);
  // indexes only, chunks wait for GC.
  absl::StatusOr<transport::PruneOutcome> Prune(
      const std::string& source_host, const std::string& volume_id,
      const transport::PruneRule& rule, bool dry_run,
      const transport::PruneScope& scope) override;
  // receiver/groups.h CommitGroup.
  absl::Status CommitGroup(const std::string& source_host,
                           const transport::GroupCommit& commit) override;
  // Vault::SetHeldUntil(now + hold_seconds).
  absl::StatusOr<int64_t> HoldVersion(const std::string& source_host,
                                      const std::string& volume_id,
                                      const std::string& version_id,
                                      uint32_t hold_seconds) override;

 private:
  Vault& vault_;
};

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_VAULT_SERVICE_BACKEND_H_
