// Verify: re-reads every chunk a version (or the whole vault) references,
// checks each object's checksum and content hash, and reports the damaged
// versions. It never repairs or deletes anything.
#ifndef CBTD_RECEIVER_VERIFY_H_
#define CBTD_RECEIVER_VERIFY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

struct DamagedVersion {
  VolumeName volume;
  std::string version;
  std::string reason;  // the first problem found, naming the chunk/index
};

struct VerifyReport {
  uint64_t versions_checked = 0;
  uint64_t chunks_checked = 0;  // distinct chunk objects read
  std::vector<DamagedVersion> damaged;
  bool ok() const { return damaged.empty(); }
};

struct VerifyScope {
  std::optional<VolumeName> volume;  // none: every volume
  std::string version;               // "": every version of the volume(s)
  int threads = 2;
};

// Errors only for failures to list the vault; damage goes in the report.
absl::StatusOr<VerifyReport> VerifyVault(Vault& vault,
                                         const VerifyScope& scope);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_VERIFY_H_
