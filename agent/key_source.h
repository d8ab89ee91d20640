// KeySource: the tenant key cbtd's runs seal backups with and its restores
// open them with, from [agent] encryption / key_file (agent/config.h).
//
// With encryption on (the default), the first backup that needs the key
// creates it when the key file does not exist (mode 0600, parent 0700,
// transport/key_file.h) and logs one line with its fingerprint and "back it
// up now". A key file that exists but cannot be used (mode too open,
// unreadable, damaged) fails the run with that error: another key is never
// created over or beside it, since the old one may be the only way to open
// earlier backups.
//
// Thread-safety: all methods may be called from concurrent runs; creation
// happens at most once.
#ifndef CBTD_AGENT_KEY_SOURCE_H_
#define CBTD_AGENT_KEY_SOURCE_H_

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/config.h"
#include "transport/stream_index.h"
#include "transport/tenant_key.h"

namespace cbtd::agent {

class KeySource {
 public:
  // `log` receives the one-line notice when a key is created.
  KeySource(EncryptionConfig config,
            std::function<void(const std::string&)> log)
      : config_(std::move(config)), log_(std::move(log)) {}

  const EncryptionConfig& config() const { return config_; }

  // The key a backup seals with: nullopt with encryption none; otherwise
  // the key file's key, created first if the file does not exist. Errors:
  // LoadKeyFile's (FAILED_PRECONDITION, PERMISSION_DENIED, DATA_LOSS),
  // naming the file; CreateKeyFile's.
  absl::StatusOr<std::optional<transport::TenantKey>> ForBackup();

  // The key a restore or verify opens with: the key file's key if it
  // exists (whatever `encryption` says now: versions made before a switch
  // to none still need it), nullopt if it does not. Never creates one.
  absl::StatusOr<std::optional<transport::TenantKey>> ForRestore();

 private:
  EncryptionConfig config_;
  std::function<void(const std::string&)> log_;
  std::mutex mu_;  // serialises first-use creation
};

// OK when a stream sealed with `key` (nullopt: plaintext) may continue the
// chain of `base`. Otherwise FAILED_PRECONDITION naming the volume, the
// base version, both keys (or "unencrypted") and what to do.
absl::Status CheckChainKey(const std::string& volume,
                           const transport::IndexMetadata& base,
                           const std::optional<transport::TenantKey>& key,
                           const EncryptionConfig& config);

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_KEY_SOURCE_H_
