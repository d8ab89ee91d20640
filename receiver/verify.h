// Verify: re-reads every chunk a version (or the whole vault) references,
// checks each object's checksum and content hash (for an encrypted
// version: its keyed id, with the key; without it only the checksum of the
// sealed bytes), and reports the damaged
// versions, naming every damaged or missing chunk of each. It never
// repairs or deletes anything.
#ifndef CBTD_RECEIVER_VERIFY_H_
#define CBTD_RECEIVER_VERIFY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"
#include "restore/restore.h"
#include "transport/tenant_key.h"

namespace cbtd::receiver {

using restore::DamagedChunk;

struct DamagedVersion {
  VolumeName volume;
  std::string version;
  std::string reason;  // the first problem: the index, or chunks[0]'s
  // Every position whose chunk is damaged or missing, ascending (a hash
  // used at several positions appears at each); empty when the index
  // itself is damaged.
  std::vector<DamagedChunk> chunks;
};

struct VerifyReport {
  uint64_t versions_checked = 0;
  uint64_t chunks_checked = 0;  // distinct chunk objects read
  // Of those, sealed chunks checked against their stored checksum only
  // (no key, or not this key's tenant): "checksums only: give --key-file
  // for full verification".
  uint64_t chunks_checksum_only = 0;
  std::vector<DamagedVersion> damaged;
  bool ok() const { return damaged.empty(); }
};

struct VerifyScope {
  std::optional<VolumeName> volume;  // none: every volume
  std::string version;  // "": every version; else this one (needs `volume`)
  int threads = 2;
  // Opens and fully checks the sealed chunks of versions encrypted with
  // this key (their keyed ids); others are checked by checksum only.
  std::optional<transport::TenantKey> key;
};

// Errors: FAILED_PRECONDITION when scope.volume is encrypted with another
// key than scope.key (naming both); INVALID_ARGUMENT for a bad name;
// NOT_FOUND when scope.volume
// has no version (an unknown host or volume) or scope.version does not
// exist: an unknown name is never reported as sound nor as damaged. Other
// errors are failures to list the vault; damage goes in the report.
absl::StatusOr<VerifyReport> VerifyVault(Vault& vault,
                                         const VerifyScope& scope);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_VERIFY_H_
