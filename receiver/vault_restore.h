// Restore from the local vault: restore/'s logic (restore/restore.h) over a
// VersionSource that reads one volume's versions from a Vault.
#ifndef CBTD_RECEIVER_VAULT_RESTORE_H_
#define CBTD_RECEIVER_VAULT_RESTORE_H_

#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"
#include "restore/restore.h"

namespace cbtd::receiver {

// A VersionSource over a local vault: one volume's versions. Every chunk is
// checked against its object checksum and content hash (Vault::ReadChunk);
// a chunk of an encrypted version must be stored sealed, one of a
// plaintext version must not (DATA_LOSS otherwise), and sealed ones are
// returned sealed for RestoreFromSource to open.
class VaultVersionSource : public restore::VersionSource {
 public:
  // `vault` must outlive the source.
  VaultVersionSource(Vault& vault, VolumeName volume)
      : vault_(vault), volume_(std::move(volume)) {}
  absl::StatusOr<VersionIndex> ReadIndex(std::string_view version) override;
  // Vault::OpenIndex, whose reader checks the object's checksum at its end
  // (RestoreFromSource checks the count and root hash as well).
  absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> OpenIndex(
      std::string_view version) override;
  absl::StatusOr<std::vector<std::string>> ReadChunks(
      std::string_view version, std::span<const ChunkHash> hashes) override;
  // Enough for a pack's neighbouring records to be read together
  // (Vault::ReadStoredChunks), few enough to keep both workers busy.
  size_t max_batch_chunks() const override { return 64; }

 private:
  // Whether `version` is encrypted (from its index's metadata, read once).
  absl::StatusOr<bool> Encrypted(std::string_view version);
  void NoteEncrypted(std::string_view version, bool encrypted);
  // The volume's host's tenant (Vault::TenantOf), looked up once: a host
  // with versions never changes tenant (receiver/tenants.h).
  absl::StatusOr<std::string> Tenant();

  Vault& vault_;
  const VolumeName volume_;
  std::mutex mu_;
  std::map<std::string, bool, std::less<>> encrypted_;  // guarded by mu_
  std::optional<std::string> tenant_;                   // guarded by mu_
};

// restore::RestoreFromSource over VaultVersionSource(vault, vol).
absl::StatusOr<restore::RestoreStats> RestoreVersion(
    Vault& vault, const VolumeName& vol, std::string_view version,
    restore::RestoreTarget& target, const restore::RestoreOptions& options);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_VAULT_RESTORE_H_
