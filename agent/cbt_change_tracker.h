// CbtChangeTracker: the ChangeTracker over cbt/. Picks the method from the
// volume's kind and config (auto: thin LV -> thin-delta, thick LV ->
// cow-table, anything else -> hash) and computes what changed between the
// committed base snapshot and the new one.
//
// Never a silent partial: whenever the method cannot answer (no base
// snapshot, the method or the volume changed, the pool or COW store says
// tracking was lost) the set is the whole volume, compared chunk by chunk
// with the base version's hashes at the receiver ("hash" with a
// fallback_reason). `full` is set only when there is no base version to
// compare with.
//
// A volume tracked by hash keeps no base snapshot (keep_snapshot = false):
// its next run compares with the receiver's index.
//
// The state blob is JSON: {"uuid": volume UUID, "size": bytes}; a volume
// re-created under the same name (new UUID) loses its chain.
#ifndef CBTD_AGENT_CBT_CHANGE_TRACKER_H_
#define CBTD_AGENT_CBT_CHANGE_TRACKER_H_

#include <string>

#include "agent/backup_ports.h"
#include "cbt/device_mapper.h"
#include "cbt/system.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/lvm.h"

namespace cbtd::agent {

class CbtChangeTracker : public ChangeTracker {
 public:
  // `runner` and `cbt_dm` serve cbt/'s methods (lvs, thin_delta, pool
  // messages), `lvm`, `dm` and `host` the volume's discovery. `lock_dir`
  // holds the per-pool lock files (e.g. /run/cbtd).
  CbtChangeTracker(cbt::CommandRunner& runner, cbt::DeviceMapper& cbt_dm,
                   snapshot::Lvm& lvm, snapshot::DeviceMapper& dm,
                   snapshot::Host& host, std::string lock_dir)
      : runner_(runner),
        cbt_dm_(cbt_dm),
        lvm_(lvm),
        dm_(dm),
        host_(host),
        lock_dir_(std::move(lock_dir)) {}

  absl::StatusOr<ChangedSet> ComputeChanges(
      const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
      const SnapshotRef& snapshot, bool full) override;

 private:
  cbt::CommandRunner& runner_;
  cbt::DeviceMapper& cbt_dm_;
  snapshot::Lvm& lvm_;
  snapshot::DeviceMapper& dm_;
  snapshot::Host& host_;
  std::string lock_dir_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_CBT_CHANGE_TRACKER_H_
