#include "agent/unwired_ports.h"

#include "absl/strings/str_cat.h"

namespace cbtd::agent {
namespace {

absl::Status Missing(const char* module) {
  return absl::UnimplementedError(
      absl::StrCat("this cbtd build has no ", module,
                   " adapter for agent/backup_ports.h yet; use the offline "
                   "cbtctl commands (snapshot, changes, send) meanwhile"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConsistencyPoint>> UnwiredPorts::Take(
    const ConsistencyRequest&) {
  return Missing("snapshot/");
}
absl::Status UnwiredPorts::RemoveSnapshot(const std::string&,
                                          const std::string&) {
  return Missing("snapshot/");
}
absl::Status UnwiredPorts::RemoveOrphans(const std::vector<std::string>&) {
  return absl::OkStatus();
}
absl::StatusOr<ChangedSet> UnwiredPorts::ComputeChanges(
    const VolumeConfig&, const std::optional<TrackingRecord>&,
    const SnapshotRef&, bool) {
  return Missing("cbt/");
}
absl::StatusOr<SendResult> UnwiredPorts::SendAndCommit(const SendRequest&,
                                                       RunControl&) {
  return Missing("transport/");
}
absl::Status UnwiredPorts::Apply(const std::string&, const RetentionPolicy&) {
  return Missing("transport/ retention");
}

}  // namespace cbtd::agent
