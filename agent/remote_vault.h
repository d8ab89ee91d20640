// RemoteVault: the receiver seen from cbtd, for everything but sending:
// retention after a backup (the receiver's Prune RPC, applied to this
// host's versions only) and the operator's versions / restore / verify
// (receiver/remote_restore.h: every chunk checked against its hash before
// it is written or counted). Encrypted versions are opened with the key
// file's key (KeySource::ForRestore), so a restore is the plaintext.
//
// Thread-safety: every call makes its own client; calls may overlap.
#ifndef CBTD_AGENT_REMOTE_VAULT_H_
#define CBTD_AGENT_REMOTE_VAULT_H_

#include "agent/backup_ports.h"
#include "agent/key_source.h"
#include "agent/remote_sender.h"

namespace cbtd::agent {

class RemoteVault : public VaultBrowser, public RetentionApplier {
 public:
  // An endpoint that could not be resolved makes every call fail with its
  // error. `keys` must outlive this object.
  RemoteVault(absl::StatusOr<ReceiverEndpoint> endpoint, KeySource& keys)
      : endpoint_(std::move(endpoint)), keys_(keys) {}

  absl::StatusOr<std::vector<VersionView>> ListVersions(
      const std::string& volume) override;
  absl::StatusOr<RestoreOutcome> Restore(
      const RestoreRequest& request) override;
  absl::StatusOr<VerifyOutcome> Verify(const std::string& volume,
                                       const std::string& version) override;
  absl::Status Apply(const std::string& volume,
                     const RetentionPolicy& policy) override;
  absl::Status ApplyGroup(const std::string& group,
                          const RetentionPolicy& policy) override;

 private:
  absl::StatusOr<std::unique_ptr<transport::RemoteClient>> Client();

  absl::StatusOr<ReceiverEndpoint> endpoint_;
  KeySource& keys_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_REMOTE_VAULT_H_
