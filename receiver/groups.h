// Group versions: the consistency point of a group of volumes as one unit
// (issue 19, docs/vault.md "Group versions").
//
// Each member's version is received like any other, its stream header
// naming the group and the group version id; its index records both. Such
// a version is a *pending member* until the group version is committed:
// CommitGroup checks that every member's version exists, carries the tags
// and has the stated root hash, then publishes
//
//   groups/<host>/<group>/<group version id>.grp
//
// (publish-if-absent). Listings show a member only while its group
// version exists, so the vault never lists half a group; a pending
// member's index and chunks stay, for the retry's dedup and as the next
// incremental's base, until retention removes it. Retention removes a
// group version's record before the first of its members' indexes.
//
// Record bytes: "cbtd-group 1\n" | JSON | "\n" | SHA-256 hex of the JSON |
// "\n". The JSON holds host, group, group_version, created_unix_ms (the
// point's instant) and members [{volume, version, root_hash}].
#ifndef CBTD_RECEIVER_GROUPS_H_
#define CBTD_RECEIVER_GROUPS_H_

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/vault.h"
#include "transport/receive_backend.h"

namespace cbtd::receiver {

using transport::GroupCommit;

// A committed group version of one host.
struct GroupRecord {
  std::string host;
  GroupCommit commit;
};

std::string GroupKey(const std::string& host, const std::string& group,
                     const std::string& group_version);
std::string EncodeGroupRecord(const GroupRecord& record);
// DATA_LOSS naming `what` for anything but a well-formed record.
absl::StatusOr<GroupRecord> ParseGroupRecord(const std::string& bytes,
                                             const std::string& what);

// Publishes the group version after checking every member (see above).
// INVALID_ARGUMENT for bad names, no members or a volume named twice;
// NOT_FOUND naming a member whose version does not exist;
// FAILED_PRECONDITION naming a member whose version was not sent for this
// group version or has another root hash. OK if the same record exists
// already (a retried commit); ALREADY_EXISTS if a different one does.
absl::Status CommitGroup(Vault& vault, const std::string& host,
                         const GroupCommit& commit);

// The committed group versions of `host`, oldest first (by id).
// DATA_LOSS naming a damaged record.
absl::StatusOr<std::vector<GroupRecord>> ListGroups(Vault& vault,
                                                    const std::string& host);

// Which group versions of one host are committed: (group, group version).
class CommittedGroups {
 public:
  static absl::StatusOr<CommittedGroups> Load(Vault& vault,
                                              const std::string& host);
  // True for a version that is not a group member, or whose group version
  // is committed.
  bool Listed(const transport::IndexMetadata& meta) const {
    return meta.group.empty() ||
           committed_.contains({meta.group, meta.group_version_id});
  }

 private:
  std::set<std::pair<std::string, std::string>> committed_;
};

// Removes the record of group version `group_version` of `group` (OK if
// absent): its members are no longer listed.
absl::Status DeleteGroup(Vault& vault, const std::string& host,
                         const std::string& group,
                         const std::string& group_version);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_GROUPS_H_
