// Consistency group: several volumes captured at one instant.
//
//   pre-hooks ─▶ [ freeze filesystems ─▶ hold I/O ─▶ frozen-hooks ─▶
//                  snapshot every member ─▶ release I/O ─▶ thaw ] ─▶ post-hooks
//                 └───────────── the window, bounded by a watchdog ─────────┘
//
// - Pre-hooks run before anything is frozen: they quiesce applications
//   (flush a database, pause a guest). They may write to the members.
// - The window: FIFREEZE on every filesystem mounted on a member, then each
//   member's dm device is suspended (flush, no lockfs) so raw writers are
//   held too; all members are held at the same time, which makes the
//   snapshots one cut (docs/snapshots.md has the argument and why this does
//   not deadlock with lvm2). Frozen-hooks run inside the window and must not
//   write to the members. Each lvcreate snapshots one held member and lvm2
//   resumes that member; the rest stay held until their turn.
// - A watchdog thread resumes and thaws everything once `freeze_bound` has
//   passed since the window opened, even if a hook, an ioctl or lvcreate
//   hangs; the group then fails and removes every snapshot it created.
// - Post-hooks always run (after the thaw), with CBTD_RESULT=ok|failed.
// - Any failure (a hook failing or timing out, a refused member, the
//   watchdog) aborts the point: nothing stays frozen or suspended and no
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
  // Suspend the members' dm devices in the window (needed for members
  // with raw writers; harmless for frozen filesystems). Turning it off is
  // only for demonstrating what goes wrong without it.
  bool hold_io = true;
  // Names the snapshots (naming.h); defaults to now.
  std::optional<std::chrono::system_clock::time_point> when;
};

struct GroupSnapshot {
  std::vector<VolumeInfo> members;
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
