// Retention and garbage collection.
//
// Prune decides, per volume, which versions to keep and deletes the index
// of every other one (a version is gone once its index is). The rule, like
// restic's / borg's: versions sorted newest first; keep the newest
// `keep_last`; for each of hourly / daily / weekly / monthly with count N,
// keep the newest version of each of the N most recent periods (UTC) that
// hold a version; always keep protected versions. A policy that keeps
// nothing is refused, so a typo cannot empty a volume.
// Group versions (receiver/groups.h) are pruned as units by PruneGroup,
// which cbtd calls for a group; a volume's own rule (VersionScope::kAlone)
// then leaves them alone. The operator's prune of a volume (kAll) counts
// every version; removing a member removes its group record first. A
// member of a group version that was never committed is not a point: it
// is removed unless it is the volume's newest version (the next
// incremental's base) or protected.
// GC (freeing what no index references) is receiver/gc.h.
#ifndef CBTD_RECEIVER_RETENTION_H_
#define CBTD_RECEIVER_RETENTION_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"

namespace cbtd::receiver {

struct RetentionPolicy {
  int keep_last = 0;
  int hourly = 0;
  int daily = 0;
  int weekly = 0;
  int monthly = 0;
  bool empty() const {
    return keep_last + hourly + daily + weekly + monthly == 0;
  }
};

struct VersionStamp {
  std::string id;
  int64_t created_unix_ms = 0;
  bool is_protected = false;
};

// The ids to keep (pure; table-tested).
std::set<std::string> VersionsToKeep(const std::vector<VersionStamp>& versions,
                                     const RetentionPolicy& policy);

struct PruneResult {
  std::vector<std::pair<VolumeName, std::string>> kept;
  std::vector<std::pair<VolumeName, std::string>> removed;
  // Would have been removed, kept: a running receive builds on them.
  std::vector<std::pair<VolumeName, std::string>> in_use;
};

// Which of a volume's versions Prune counts and may remove.
enum class VersionScope {
  kAll,    // every version (the operator's `cbt-receiver prune`)
  kAlone,  // only those backed up on their own; group members are left to
           // PruneGroup
};

// Applies `policy` to `volume` (or every volume). dry_run lists only.
absl::StatusOr<PruneResult> Prune(Vault& vault,
                                  const std::vector<VolumeName>& volumes,
                                  const RetentionPolicy& policy, bool dry_run,
                                  VersionScope scope = VersionScope::kAll);

// What PruneGroup kept and removed, by group version id.
struct GroupPruneResult {
  std::vector<std::string> kept;
  std::vector<std::string> removed;
  // Member versions removed: of removed group versions, and pending
  // members of the group superseded by a newer version of their volume.
  std::vector<std::pair<VolumeName, std::string>> removed_members;
  // Would have been removed, kept: a running receive builds on them.
  std::vector<std::pair<VolumeName, std::string>> in_use;
};

// Applies `policy` to the committed group versions of `group` of `host`,
// dated at their points' instants: a group version it does not keep loses
// its record first, then each member's version. A group version with a
// protected member is kept. Then the group's pending members (of points
// never committed) are removed unless one is its volume's newest version.
// NOT_FOUND when the group has no group version.
absl::StatusOr<GroupPruneResult> PruneGroup(Vault& vault,
                                            const std::string& host,
                                            const std::string& group,
                                            const RetentionPolicy& policy,
                                            bool dry_run);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RETENTION_H_
