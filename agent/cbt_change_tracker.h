// CbtChangeTracker: the ChangeTracker over cbt/. Picks the method from the
// volume's kind and config (auto: thin LV -> thin-delta, thick LV ->
// cow-table, a dm-era device -> era, anything else -> hash) and computes
// what changed between the committed base snapshot and the new one (era:
// what the stack recorded since the era the last run stored; its state
// also holds the stack's generation, so a rebuilt stack is never trusted).
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
#include "cbt/era_method.h"
#include "cbt/era_stack.h"
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
  // `era_registry_dir` holds the era stacks' records (cbt/era_stack.h).
  CbtChangeTracker(cbt::CommandRunner& runner, cbt::DeviceMapper& cbt_dm,
                   snapshot::Lvm& lvm, snapshot::DeviceMapper& dm,
                   snapshot::Host& host, std::string lock_dir,
                   std::string era_registry_dir = cbt::kDefaultEraRegistryDir)
      : runner_(runner),
        cbt_dm_(cbt_dm),
        lvm_(lvm),
        dm_(dm),
        host_(host),
        lock_dir_(std::move(lock_dir)),
        era_registry_dir_(std::move(era_registry_dir)) {}

  absl::StatusOr<ChangedSet> ComputeChanges(
      const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
      const SnapshotRef& snapshot, bool full) override;

 private:
  // The changed set (ComputeChanges without SkipUnallocated).
  absl::StatusOr<ChangedSet> Track(const VolumeConfig& volume,
                                   const snapshot::VolumeInfo& info,
                                   const std::optional<TrackingRecord>& base,
                                   const SnapshotRef& snapshot, bool full);
  // The bytes of the new snapshot that read as zeros without being
  // written: a thin LV's unmapped blocks (from the pool's metadata), an
  // image file's holes. Empty for other volumes.
  absl::StatusOr<cbt::ExtentSet> Unallocated(const snapshot::VolumeInfo& info,
                                             const SnapshotRef& snapshot);
  // For a run that reads the whole volume (a full, or the hash method):
  // moves the unallocated bytes from `extents` to `zeroed`, so they are
  // sent as zeros without being read. Reads everything (and says so on
  // stderr) when the map cannot be had.
  void SkipUnallocated(const snapshot::VolumeInfo& info,
                       const SnapshotRef& snapshot, ChangedSet& out);

  // era: checkpoints the stack and reads what was written since the era
  // the last run stored (the whole set is marked lost when it stored
  // none). Run on every era run, full or not: its checkpoint anchors the
  // next one.
  absl::StatusOr<std::optional<cbt::EraResult>> Era(
      const snapshot::VolumeInfo& info,
      const std::optional<TrackingRecord>& base);

  cbt::CommandRunner& runner_;
  cbt::DeviceMapper& cbt_dm_;
  snapshot::Lvm& lvm_;
  snapshot::DeviceMapper& dm_;
  snapshot::Host& host_;
  std::string lock_dir_;
  std::string era_registry_dir_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_CBT_CHANGE_TRACKER_H_
