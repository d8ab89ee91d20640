#include "agent/key_source.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "transport/key_file.h"

namespace cbtd::agent {

absl::StatusOr<std::optional<transport::TenantKey>> KeySource::ForBackup() {
  if (!config_.enabled) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<transport::KeyFile> file =
      transport::LoadKeyFile(config_.key_file);
  if (file.ok()) return std::optional<transport::TenantKey>(file->key);
  // Only a file that is not there is created: one that is there but can't
  // be used may be the only key of earlier backups.
  if (!absl::IsNotFound(file.status())) return file.status();
  absl::StatusOr<transport::TenantKey> key = transport::TenantKey::Generate();
  if (!key.ok()) return key.status();
  absl::Status created =
      transport::CreateKeyFile(config_.key_file, *key, std::time(nullptr));
  if (absl::IsAlreadyExists(created)) {
    // Another process (cbtctl key create) won the race: use its key.
    file = transport::LoadKeyFile(config_.key_file);
    if (!file.ok()) return file.status();
    return std::optional<transport::TenantKey>(file->key);
  }
  if (!created.ok()) {
    return absl::Status(created.code(),
                        absl::StrCat("creating the backup encryption key: ",
                                     std::string(created.message()),
                                     " (or set encryption = none in [agent])"));
  }
  if (log_) {
    log_(absl::StrCat("created the backup encryption key ", config_.key_file,
                      ", fingerprint ", key->fingerprint(),
                      ": back it up now: cbtctl key export (without it no "
                      "backup of this host can be restored)"));
  }
  return std::optional<transport::TenantKey>(*key);
}

absl::StatusOr<std::optional<transport::TenantKey>> KeySource::ForRestore() {
  absl::StatusOr<transport::KeyFile> file =
      transport::LoadKeyFile(config_.key_file);
  if (absl::IsNotFound(file.status())) return std::nullopt;
  if (!file.ok()) return file.status();
  return std::optional<transport::TenantKey>(file->key);
}

absl::Status CheckChainKey(const std::string& volume,
                           const transport::IndexMetadata& base,
                           const std::optional<transport::TenantKey>& key,
                           const EncryptionConfig& config) {
  const std::string mine = key ? key->fingerprint() : "";
  if (base.key_fingerprint == mine) return absl::OkStatus();
  const std::string head =
      absl::StrCat("cannot continue the backups of ", volume, ": its base ",
                   base.version_id, " at the receiver was made ");
  if (!key) {
    return absl::FailedPreconditionError(absl::StrCat(
        head, "encrypted with key ", base.key_fingerprint,
        " but [agent] encryption = none; set encryption = aes-256-gcm with "
        "key_file holding that key (cbtctl key import) to continue them"));
  }
  if (base.key_fingerprint.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        head, "unencrypted but encryption is on (key ", mine, " in ",
        config.key_file,
        "); the receiver binds a host to one key, so set encryption = none "
        "in [agent] to continue them unencrypted, or back up under a new "
        "receiver identity (docs/operations.md, \"Encryption keys\")"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      head, "with key ", base.key_fingerprint, " but ", config.key_file,
      " holds key ", mine,
      "; put the old key back (move this file away, then cbtctl key import "
      "its recovery text) and the next run continues the chain"));
}

}  // namespace cbtd::agent
