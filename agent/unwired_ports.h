// Placeholder ports for a cbtd built before snapshot/, cbt/ and transport/
// are adapted to agent/backup_ports.h: every backup step fails with
// UNIMPLEMENTED naming the missing adapter, so the daemon, its control
// API, state and metrics can run and be tested end to end meanwhile.
// Replace each with its adapter in cbtd's main (one line each).
#ifndef CBTD_AGENT_UNWIRED_PORTS_H_
#define CBTD_AGENT_UNWIRED_PORTS_H_

#include "agent/backup_ports.h"

namespace cbtd::agent {

class UnwiredPorts : public ConsistencyPointTaker,
                     public ChangeTracker,
                     public Sender,
                     public RetentionApplier {
 public:
  absl::StatusOr<std::unique_ptr<ConsistencyPoint>> Take(
      const ConsistencyRequest& request) override;
  absl::Status RemoveSnapshot(const std::string& volume,
                              const std::string& snapshot_name) override;
  // Nothing was ever created, so nothing is orphaned: OK.
  absl::Status RemoveOrphans(const std::vector<std::string>& keep) override;
  absl::StatusOr<ChangedSet> ComputeChanges(
      const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
      const SnapshotRef& snapshot, bool full) override;
  absl::StatusOr<SendResult> SendAndCommit(const SendRequest& request,
                                           RunControl& control) override;
  absl::Status Apply(const std::string& volume,
                     const RetentionPolicy& policy) override;

  BackupPorts ports() { return {this, this, this, this}; }
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_UNWIRED_PORTS_H_
