// Snapshots of device-mapper volumes that lvm2 does not manage (a linear
// or striped table made with dmsetup, say), with the kernel's dm-snapshot
// target (Documentation/admin-guide/device-mapper/snapshot.rst), the way
// lvm2 builds a thick snapshot. For origin NAME with table T and a snapshot
// taken at TS (device names and uuids: naming.h):
//
//   cbtd-NAME-real      T (created once, shared by NAME's snapshots)
//   cbtd-NAME-cow-TS    linear over the caller's COW store block device
//   cbtd-NAME-TS        snapshot <real> <cow> P 8 (read-only; persistent,
//                       so cbt/'s cow-table reader can parse the store)
//   NAME                T replaced by snapshot-origin <real>: the origin
//                       stays at its path and its data never moves
//
// Lifecycle of one snapshot:
//
//   Prepare ──▶ prepared: -real and -cow exist, NAME unchanged
//      │  (the caller suspends NAME; in a group every member is held)
//   TakeSuspended ──▶ taken: snapshot exists, snapshot-origin loaded
//      │  (the caller resumes NAME: the table goes live)
//      ▼
//   live ──Remove──▶ gone: snapshot and -cow removed; when NAME has no
//                    snapshot left, NAME gets T back (read from -real) and
//                    -real is removed
//
// Remove works from every state (it removes what exists), so an RAII
// handle (ScopedSnapshot) can undo a half-made snapshot. Ownership: only
// devices whose name and `CBTD-` uuid match naming.h are ever changed.
//
// Thread-safety: no mutable state; as thread-safe as the DeviceMapper and
// Host. Two processes snapshotting or removing the same origin at once are
// not supported (the agent runs one job per volume).
#ifndef CBTD_SNAPSHOT_DM_SNAPSHOTTER_H_
#define CBTD_SNAPSHOT_DM_SNAPSHOTTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/snapshotter.h"
#include "snapshot/volume.h"

namespace cbtd::snapshot {

class DmSnapshotter {
 public:
  // 4 KiB chunks, lvm2's default.
  static constexpr uint64_t kChunkSectors = 8;
  // Zeroed at the start of the COW store: the kernel then starts a fresh
  // exception store instead of reading an old header.
  static constexpr uint64_t kZeroBytes = 4096;

  DmSnapshotter(DeviceMapper& dm, Host& host) : dm_(dm), host_(host) {}

  // Whether `volume` (kOtherDm) can be snapshotted with `cow_store`, which
  // must hold at least `cow_bytes`. Returns the store's identity.
  // FAILED_PRECONDITION, naming the volume and what to configure, if there
  // is no store, it is missing, too small or the volume itself.
  absl::StatusOr<BlockDeviceId> Check(const VolumeInfo& volume,
                                      const std::string& cow_store,
                                      uint64_t cow_bytes);

  // Zeroes the store's start and creates -real (unless NAME already has
  // cbtd snapshots) and -cow. NAME is not touched. On error removes what
  // it created. FAILED_PRECONDITION if the snapshot exists or the store is
  // in use.
  absl::Status Prepare(const VolumeInfo& volume, const std::string& cow_store,
                       const std::string& timestamp);

  // With NAME suspended by the caller: creates the snapshot device and
  // loads snapshot-origin into NAME, live at the caller's resume. On error
  // the caller resumes NAME, then calls Remove.
  absl::Status TakeSuspended(const VolumeInfo& volume,
                             const std::string& timestamp);

  // The agent's dm snapshots, oldest first: vg "", kind kOtherDm, fill and
  // `invalid` from the snapshot target's status. One whose create was
  // interrupted (-cow without the snapshot) is listed inactive and invalid.
  absl::StatusOr<std::vector<SnapshotInfo>> List();

  // NOT_FOUND if absent, FAILED_PRECONDITION if `name` is a dm device that
  // is not the agent's.
  absl::StatusOr<SnapshotInfo> Get(const std::string& name);

  // Removes snapshot `name`, its -cow and, if it was NAME's last, restores
  // NAME's table and removes -real. Same errors as Get; FAILED_PRECONDITION
  // if a device is open (e.g. the snapshot is being read) or NAME's table
  // was changed by someone else (then -real is left and named).
  absl::Status Remove(const std::string& name);

  // Restores every origin whose -real has no snapshot left (an interrupted
  // create or remove) and removes the -real; returns the -real names.
  absl::StatusOr<std::vector<std::string>> RemoveUnusedReal();

 private:
  absl::Status Cleanup(const std::string& origin, const std::string& timestamp);
  absl::Status ReleaseOrigin(const std::string& origin);

  DeviceMapper& dm_;
  Host& host_;
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_DM_SNAPSHOTTER_H_
