// Snapshots of single volumes: safety checks, create, list, remove and
// orphan cleanup of the agent's own snapshots. Consistency groups
// (consistency_group.h) build on this.
//
// Backends: LVM thin and thick LVs through lvm2 (named by naming.h and
// tagged kSnapshotTag), and device-mapper volumes lvm2 does not manage
// (kOtherDm) through dm-snapshot, delegated to DmSnapshotter
// (dm_snapshotter.h). A dm snapshot has vg "" and name = its dm name
// (cbtd-NAME-TS); its FullName() is "dm/cbtd-NAME-TS", and Get/Remove
// accept vg "" or "dm" for it ("dm" falls back to an LVM VG of that name
// when no such dm snapshot exists).
//
// Ownership rule: Remove and RemoveOrphans touch only LVs that carry the
// `cbtd` tag AND a name ParseSnapshotName accepts, and dm devices whose
// name and `CBTD-` uuid match naming.h; anything else is refused.
//
// Thread-safety: a Snapshotter has no mutable state; it is as thread-safe
// as the Lvm, DeviceMapper and Host it was given (all of them are).
#ifndef CBTD_SNAPSHOT_SNAPSHOTTER_H_
#define CBTD_SNAPSHOT_SNAPSHOTTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/lvm.h"
#include "snapshot/volume.h"

namespace cbtd::snapshot {

struct SnapshotPolicy {
  // Refuse a thin snapshot when the pool's data or metadata is fuller.
  double pool_fill_limit_percent = 80.0;
  // COW size of a thick snapshot: a fixed size if set, else this percentage
  // of the origin (rounded up to whole extents, at least one extent).
  std::optional<uint64_t> cow_size_bytes;
  double cow_percent = 20.0;
  // Per-volume overrides of the two above, keyed by VolumeInfo::path; a
  // fixed size wins over a percentage.
  std::map<std::string, uint64_t> cow_size_bytes_for;
  std::map<std::string, double> cow_percent_for;
  // The largest COW size a thick snapshot may be created with (keyed by
  // VolumeInfo::path; absent: the origin's size): the bound on sizes
  // learned from the volume's write rate (LearnCowSizes).
  std::map<std::string, uint64_t> cow_limit_bytes_for;
  std::map<std::string, double> cow_limit_percent_for;
  // Device-mapper volumes (kOtherDm): the COW store block device of each,
  // keyed by VolumeInfo::path. Its first 4 KiB are zeroed and the whole
  // device is used; it must hold at least the COW size above. A dm volume
  // without one is refused.
  std::map<std::string, std::string> dm_cow_device_for;
};

// One of the agent's snapshots as lvm2 (or device-mapper) reports it.
struct SnapshotInfo {
  std::string vg;    // "" for dm snapshots
  std::string name;  // LV name, or dm name for dm snapshots
  // Origin LV, or origin dm name; empty if the (thin) origin was removed.
  std::string origin;
  std::string timestamp;  // from the name, e.g. 20261121T224005Z
  VolumeKind kind = VolumeKind::kThinLv;  // kThinLv, kThickLv or kOtherDm
  std::string uuid;
  uint64_t size_bytes = 0;
  bool active = false;
  std::string device_path;  // /dev/mapper/<dm name>, readable when active
  // Thick and dm: the exception store changed-block tracking reads, and how
  // full it is; an overflowed (invalid) snapshot is unusable.
  std::string cow_dm_path;
  std::optional<double> cow_fill_percent;
  bool invalid = false;
  // Thin: the snapshot's thin device id in its pool.
  std::optional<uint64_t> thin_id;
  std::string pool_lv;

  // "VG/LV", or "dm/NAME" for dm snapshots.
  std::string FullName() const { return (vg.empty() ? "dm" : vg) + "/" + name; }
};

class ScopedSnapshot;

class Snapshotter {
 public:
  Snapshotter(Lvm& lvm, DeviceMapper& dm, Host& host, SnapshotPolicy policy);

  absl::StatusOr<VolumeInfo> Discover(const std::string& path) {
    return DiscoverVolume(path, lvm_, dm_, host_);
  }

  // The checks made before anything is frozen or created, for all the
  // volumes that are to be snapshotted together (COW space is summed per
  // VG). FAILED_PRECONDITION for a volume that cannot be snapshotted, a
  // thin pool over the fill limit, or a dm volume without a usable COW
  // store (none configured, missing, too small, shared by two members, a
  // member itself), RESOURCE_EXHAUSTED for a VG without enough free
  // extents. Messages say how full and what to do.
  absl::Status CheckCanSnapshot(const std::vector<VolumeInfo>& volumes);

  // The COW size policy applied to `volume`, or the size learned for it
  // if larger, rounded up to 512-byte sectors (lvm2 then rounds up to
  // extents).
  uint64_t CowSizeBytes(const VolumeInfo& volume) const;
  // What a thick volume's last snapshot shows of its write rate: each of
  // cbtd's snapshots of the origin that exists now (the base of its
  // tracking) has collected the writes since it was taken, about one
  // interval between runs. A new snapshot of `volumes`' thick members is
  // sized at twice the most any of them holds, if that is more than the
  // policy gives, bounded by the volume's limit and by what its VG has
  // free beyond the policy's sizes (so learning never makes a point
  // fail). Adds one line to notes() per size raised. CheckCanSnapshot
  // calls it first.
  absl::Status LearnCowSizes(const std::vector<VolumeInfo>& volumes);
  // The per-volume COW size given for path `from` applies to path `to`
  // too: the LV below an era device is snapshotted under the settings of
  // the era device that was configured.
  void InheritCowSize(const std::string& from, const std::string& to);

  // LearnCowSizes' lines, in order.
  const std::vector<std::string>& notes() const { return notes_; }

  // Creates snapshot `name` of `volume` (tagged, read-only) with lvcreate,
  // which suspends the origin itself. A thick origin may already be held
  // suspended by the caller (a group's window, with skip-lockfs): lvcreate
  // then skips its suspend, snapshots the held instant and resumes the
  // origin when done; a thin one must not be held (dm-thin needs the pool's
  // messages). A
  // thick snapshot is always active; a thin one only if `activate` (a
  // consistency group re-takes inactive thin snapshots at its instant).
  // A dm volume: PrepareDm, suspend, TakeDm, resume (no filesystem freeze:
  // crash-consistent; the group code freezes). `name` is then
  // DmSnapshotName(volume.dm_name, ...). Does not repeat CheckCanSnapshot.
  // The result removes the snapshot when destroyed unless released.
  absl::StatusOr<std::unique_ptr<ScopedSnapshot>> Create(
      const VolumeInfo& volume, const std::string& name, bool activate = true);

  // The two halves of a dm snapshot (dm_snapshotter.h), for a consistency
  // group's window. PrepareDm, outside the window: the helper devices; the
  // result removes them (and the snapshot, once taken) unless released.
  // TakeDm, with the volume suspended by the caller: the snapshot at this
  // instant; it goes live when the caller resumes the volume.
  absl::StatusOr<std::unique_ptr<ScopedSnapshot>> PrepareDm(
      const VolumeInfo& volume, const std::string& name);
  absl::Status TakeDm(const VolumeInfo& volume, const std::string& name);

  // Activates a snapshot this Snapshotter created, for reading.
  absl::Status Activate(const ScopedSnapshot& snapshot);
  absl::Status Deactivate(const std::string& vg, const std::string& name);

  // The agent's snapshots in `vg` (all VGs and the dm snapshots if empty),
  // oldest first.
  absl::StatusOr<std::vector<SnapshotInfo>> List(const std::string& vg = "");

  // One of the agent's snapshots. NOT_FOUND if absent, FAILED_PRECONDITION
  // if vg/name exists but is not the agent's.
  absl::StatusOr<SnapshotInfo> Get(const std::string& vg,
                                   const std::string& name);

  // Removes one of the agent's snapshots; same errors as Get.
  absl::Status Remove(const std::string& vg, const std::string& name);

  // Removes every agent snapshot whose FullName() is not in `keep`; returns
  // what it removed. Then restores dm origins left with no snapshot (an
  // interrupted create). Stops at the first failure.
  absl::StatusOr<std::vector<SnapshotInfo>> RemoveOrphans(
      const std::set<std::string>& keep);

  const SnapshotPolicy& policy() const { return policy_; }

 private:
  // The policy's COW size, before learning (not rounded).
  uint64_t PolicyCowBytes(const VolumeInfo& volume) const;
  // The most a thick snapshot of `volume` may be created with.
  uint64_t CowLimitBytes(const VolumeInfo& volume) const;
  // The most COW any of cbtd's existing snapshots of `volume` holds (0:
  // none): the writes of about one interval between runs.
  absl::StatusOr<uint64_t> LearnedCowBytes(const VolumeInfo& volume);

  Lvm& lvm_;
  DeviceMapper& dm_;
  Host& host_;
  SnapshotPolicy policy_;
  std::map<std::string, uint64_t> learned_cow_bytes_;  // by path
  std::vector<std::string> notes_;
};

// Owns one snapshot the agent created.
//
//   created ──Release()──▶ released (kept; the caller owns it now)
//      └──── destructor / Remove() ──▶ removed
//
// Not copyable. Not thread-safe.
class ScopedSnapshot {
 public:
  ScopedSnapshot(Snapshotter* snapshotter, std::string vg, std::string name)
      : snapshotter_(snapshotter), vg_(std::move(vg)), name_(std::move(name)) {}
  ~ScopedSnapshot();
  ScopedSnapshot(const ScopedSnapshot&) = delete;
  ScopedSnapshot& operator=(const ScopedSnapshot&) = delete;

  const std::string& vg() const { return vg_; }
  const std::string& name() const { return name_; }

  // Keeps the snapshot; the destructor then does nothing.
  void Release() { snapshotter_ = nullptr; }
  // Removes it now and reports the outcome; afterwards like Release().
  absl::Status Remove();

 private:
  Snapshotter* snapshotter_;
  std::string vg_;
  std::string name_;
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_SNAPSHOTTER_H_
