// LvmSnapshotPort: the ConsistencyPointTaker over snapshot/. A consistency
// point is one TakeGroupSnapshot of the request's member paths (a single
// volume is a group of one); its snapshots are named "VG/LV" in SnapshotRef
// and TrackingRecord, and removed when the point is destroyed unless Kept.
// A plain block device or an image file is taken by file_point.h instead
// (a reflink copy named by its path, or a live read with no name). A
// dm-era device (a cbtd era stack) is snapshotted below: the snapshot is of
// its origin LV, taken while the era device is held too. While a point
// lives, its thick (COW) snapshots are kept from overflowing: extended up
// to each volume's cow_max_size (snapshot/cow_guard.h, notes on stderr),
// and one that overflowed anyway is named by Overflow().
//
// Thread-safety: Take/RemoveSnapshot may run concurrently for different
// volumes (the Lvm, DeviceMapper and Host given are thread-safe).
#ifndef CBTD_AGENT_LVM_SNAPSHOT_PORT_H_
#define CBTD_AGENT_LVM_SNAPSHOT_PORT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/backup_ports.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/lvm.h"
#include "snapshot/snapshotter.h"
#include "snapshot/volume.h"

namespace cbtd::agent {

class LvmSnapshotPort : public ConsistencyPointTaker {
 public:
  LvmSnapshotPort(snapshot::Lvm& lvm, snapshot::DeviceMapper& dm,
                  snapshot::Host& host, snapshot::SnapshotPolicy defaults = {})
      : lvm_(lvm), dm_(dm), host_(host), defaults_(std::move(defaults)) {}

  absl::StatusOr<std::unique_ptr<ConsistencyPoint>> Take(
      const ConsistencyRequest& request) override;
  // `snapshot_name` is "VG/LV"; a snapshot that is already gone is OK.
  absl::Status RemoveSnapshot(const std::string& volume,
                              const std::string& snapshot_name) override;
  absl::Status RemoveOrphans(const std::vector<std::string>& keep) override;

  // Undoes what a killed cbtd may have left in a consistency point's
  // window: resumes suspended dm devices of `paths` and thaws the
  // filesystems mounted on them (a thaw of an unfrozen filesystem is a
  // no-op). Called once at start, before any run. Returns what it did, one
  // line per action; errors name the device.
  absl::StatusOr<std::vector<std::string>> ReleaseStaleHolds(
      const std::vector<std::string>& paths);

  // The snapshot policy for `request`: the defaults plus each member's
  // cow_size (exposed for tests).
  snapshot::SnapshotPolicy PolicyFor(const ConsistencyRequest& request) const;

 private:
  // What `path` is if it is a plain block device or an image file.
  absl::StatusOr<std::optional<snapshot::VolumeInfo>> FileOrRawMember(
      const std::string& path);

  snapshot::Lvm& lvm_;
  snapshot::DeviceMapper& dm_;
  snapshot::Host& host_;
  snapshot::SnapshotPolicy defaults_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_LVM_SNAPSHOT_PORT_H_
