// Consistency group: several volumes captured at one instant.
//
//   discover + safety checks ─▶ create thin snapshots (inactive, lvcreate)
//   ─▶ pre-hooks ─▶ [ FIFREEZE filesystems ─▶ suspend members ─▶ frozen-hooks
//   ─▶ re-take every thin snapshot, make every dm and thick snapshot, at
//   this instant ─▶ resume ─▶ thaw ] ─▶ activate ─▶ post-hooks
//                 [ ... ] is the window, bounded by a watchdog
//
// Why this shape (docs/snapshots.md has the whole argument):
// - lvm2 snapshots one LV per command, and skips loading the snapshot
//   tables of a thin LV whose origin is already suspended; and on Linux 6.1
//   lvcreate's own freeze fails with EBUSY on a filesystem frozen with
//   FIFREEZE.
// - For thin members the instant is therefore taken below lvm2, the way the
//   kernel documents it: with every member suspended (flush, no lockfs),
//   the pool is sent `delete <id>` + `create_snap <id> <origin id>` for each
//   snapshot lvm2 has already created (same thin id, so lvm2's metadata
//   stays right). All members are held at the same time, so the snapshots
//   are one cut even for raw writers.
// - Device-mapper members that are not LVs (dm_snapshotter.h) need no lvm2
//   command: their helper devices are made before the window, and in it,
//   with every member held, each gets its snapshot device and its
//   snapshot-origin table (live at the resume). With `sequential` each
//   gets a window of its own.
// - Thick (COW) members are snapshotted by lvcreate inside the window
//   whenever there is one to share (several members, frozen hooks, an era
//   device above whose filesystem must be frozen): lvm2 finds the origin
//   suspended, skips its own suspend, and still loads the snapshot tables, so
//   the snapshot holds the window's instant. Alone, lvcreate's own suspend is
//   the window.
// - A member given as a dm-era device (a cbtd era stack) is snapshotted
//   below it: its origin LV is the member (suspended in the window, which
//   holds the era device's writes too) and the filesystem on the era
//   device is what is frozen, so the origin's snapshot is the era device's
//   content at the instant. The era device itself is never suspended: its
//   status queries (lvcreate makes them) block while it is.
// - `sequential` gives each member a window of its own (an era or dm
//   member) or lvcreate's (a thin or thick LV): each is consistent on its
//   own only.
// - Pre-hooks run before anything is frozen: they quiesce applications
//   (flush a database, pause a guest) and may write to the members.
// - Frozen-hooks run inside the window and must not write to the members.
// - A watchdog thread resumes and thaws everything once `freeze_bound` has
//   passed since the window opened, even if a hook or an ioctl hangs; the
//   group then fails and removes every snapshot it created.
// - Post-hooks always run (last), with CBTD_RESULT=ok|failed.
// - Any failure aborts the point: nothing stays frozen or suspended and no
//   snapshot is kept.
//
// Hooks run with /bin/sh -c and get CBTD_GROUP, CBTD_VOLUMES (the member
// paths, space-separated), CBTD_SNAPSHOT_TIME and CBTD_PHASE
// (pre|frozen|post) in their environment.
#ifndef CBTD_SNAPSHOT_CONSISTENCY_GROUP_H_
#define CBTD_SNAPSHOT_CONSISTENCY_GROUP_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/snapshotter.h"
#include "snapshot/volume.h"

namespace cbtd::snapshot {

struct GroupOptions {
  std::string group_name = "default";
  std::vector<std::string> pre_hooks;
  std::vector<std::string> frozen_hooks;
  std::vector<std::string> post_hooks;
  std::chrono::milliseconds hook_timeout{std::chrono::seconds(30)};
  // Longest time filesystems stay frozen and I/O held.
  std::chrono::milliseconds freeze_bound{std::chrono::seconds(10)};
  // FIFREEZE the filesystems mounted on thin members inside the window.
  // Off: crash-consistent only (I/O is still held at the block layer).
  // Thick members are frozen by lvcreate itself either way.
  bool freeze = true;
  // Snapshot every member on its own (lvcreate, or a one-member window for
  // dm and era members), one after the other, with no common window: each
  // member is consistent on its own only (for demonstrating what goes
  // wrong without the window, or members that cannot be held together).
  bool sequential = false;
  // Names the snapshots (naming.h); defaults to now.
  std::optional<std::chrono::system_clock::time_point> when;
};

struct GroupSnapshot {
  // What is snapshotted: for a path that is an era device, the LV below it.
  std::vector<VolumeInfo> members;
  // era_above[i]: the era device path i named, held with members[i].
  std::vector<std::optional<VolumeInfo>> era_above;
  // snapshots[i] is of members[i]; removed on destruction unless released.
  std::vector<std::unique_ptr<ScopedSnapshot>> snapshots;
  std::chrono::milliseconds window{0};  // how long the window was open
};

// Takes one consistent snapshot of every volume in `paths`. Errors:
// INVALID_ARGUMENT (a path given twice), NOT_FOUND (a missing volume),
// FAILED_PRECONDITION / RESOURCE_EXHAUSTED (a safety check refused; nothing
// was changed), DEADLINE_EXCEEDED (the watchdog ended the window), or the
// error of the failed hook / lvm2 / dm step, naming it.
absl::StatusOr<GroupSnapshot> TakeGroupSnapshot(
    Snapshotter& snapshotter, DeviceMapper& dm, Host& host,
    const std::vector<std::string>& paths, const GroupOptions& options);

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_CONSISTENCY_GROUP_H_
