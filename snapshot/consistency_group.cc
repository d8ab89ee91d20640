#include "snapshot/consistency_group.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "snapshot/naming.h"

namespace cbtd::snapshot {
namespace {

using Clock = std::chrono::steady_clock;

// The filesystems frozen and devices suspended during a group's window.
//
//   holding ──ReleaseAll()──▶ released
//
// ReleaseAll may be called by the watchdog thread and by the owner;
// whichever comes first releases, later calls return OK at once. A Freeze
// or Suspend that completes after the release (the watchdog fired while it
// was blocked) is undone immediately and reported as an error. The
// ioctls run outside the mutex so a hung one cannot block the watchdog.
class Hold {
 public:
  Hold(DeviceMapper& dm, Host& host) : dm_(dm), host_(host) {}
  ~Hold() { (void)ReleaseAll(); }
  Hold(const Hold&) = delete;
  Hold& operator=(const Hold&) = delete;

  absl::Status Freeze(const std::string& mount_point) {
    absl::Status st = host_.Freeze(mount_point);
    if (!st.ok()) return st;
    std::unique_lock lock(mu_);
    if (released_) {
      lock.unlock();
      (void)host_.Thaw(mount_point);
      return Late(mount_point);
    }
    frozen_.push_back(mount_point);
    return absl::OkStatus();
  }

  absl::Status Suspend(const std::string& dm_name) {
    absl::Status st = dm_.Suspend(dm_name);
    if (!st.ok()) return st;
    std::unique_lock lock(mu_);
    if (released_) {
      lock.unlock();
      (void)dm_.Resume(dm_name);
      return Late(dm_name);
    }
    suspended_.push_back(dm_name);
    return absl::OkStatus();
  }

  // Resumes devices first (thawing a filesystem writes to its device, which
  // would block while the device is suspended), then thaws, in reverse
  // order. Tries everything; returns the first error.
  absl::Status ReleaseAll() {
    std::vector<std::string> frozen, suspended;
    {
      std::lock_guard lock(mu_);
      if (released_) return absl::OkStatus();
      released_ = true;
      frozen.swap(frozen_);
      suspended.swap(suspended_);
    }
    absl::Status first;
    for (auto it = suspended.rbegin(); it != suspended.rend(); ++it) {
      first.Update(dm_.Resume(*it));
    }
    for (auto it = frozen.rbegin(); it != frozen.rend(); ++it) {
      first.Update(host_.Thaw(*it));
    }
    return first;
  }

 private:
  static absl::Status Late(const std::string& what) {
    return absl::DeadlineExceededError(
        absl::StrCat("the freeze watchdog fired while holding ", what));
  }

  DeviceMapper& dm_;
  Host& host_;
  std::mutex mu_;
  bool released_ = false;
  std::vector<std::string> frozen_;
  std::vector<std::string> suspended_;
};

// Calls `on_expiry` from its own thread once `bound` has passed, unless
// Stop() came first.
//
//   armed ──bound passes──▶ fired (on_expiry ran)
//     └──────Stop()───────▶ stopped
class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds bound, std::function<void()> on_expiry)
      : deadline_(Clock::now() + bound),
        on_expiry_(std::move(on_expiry)),
        thread_([this] { Run(); }) {}
  ~Watchdog() { Stop(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  bool fired() {
    std::lock_guard lock(mu_);
    return fired_;
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, deadline_, [this] { return stopped_; })) return;
    fired_ = true;
    lock.unlock();
    on_expiry_();
  }

  const Clock::time_point deadline_;
  std::function<void()> on_expiry_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

absl::Status RunHooks(Host& host, const std::vector<std::string>& hooks,
                      std::vector<std::string> env, const char* phase,
                      std::chrono::milliseconds timeout) {
  env.push_back(absl::StrCat("CBTD_PHASE=", phase));
  for (const std::string& hook : hooks) {
    absl::Status st = host.RunHook(hook, env, timeout);
    if (!st.ok()) {
      return absl::Status(
          st.code(), absl::StrCat(phase, "-hook '", hook, "': ", st.message()));
    }
  }
  return absl::OkStatus();
}

// Points thin snapshot `snap_id` at the current content of thin device
// `origin_id`. The origin must be suspended (dm-thin's rule for
// create_snap) and the snapshot inactive. If create_snap fails after the
// delete, an empty thin device takes the id back so that lvm2's metadata
// still matches the pool and lvremove works.
absl::Status RetakeThinSnapshot(DeviceMapper& dm, const std::string& pool,
                                uint64_t snap_id, uint64_t origin_id) {
  absl::Status st = dm.Message(pool, absl::StrCat("delete ", snap_id));
  if (!st.ok()) return st;
  st = dm.Message(pool, absl::StrCat("create_snap ", snap_id, " ", origin_id));
  if (!st.ok()) (void)dm.Message(pool, absl::StrCat("create_thin ", snap_id));
  return st;
}

// A member held in the window and what is done to it there: a thin
// member's snapshot is re-taken with the same thin id; a dm member gets
// its snapshot device and snapshot-origin table (live at the resume); a
// thick member's snapshot is created by lvcreate, which finds the origin
// suspended, skips its own suspend and resumes it when done: the snapshot
// holds the origin as it was when the window suspended it (writes after
// lvcreate's resume are copied out to the new COW store first).
struct WindowMember {
  size_t index;                          // into out.members
  std::optional<uint64_t> thin_snap_id;  // thin members
  bool thick = false;
};

// The window: freeze, hold, frozen-hooks, take every member's snapshot,
// release.
absl::Status RunWindow(Snapshotter& snapshotter, DeviceMapper& dm, Host& host,
                       const std::vector<WindowMember>& members,
                       const std::vector<std::string>& names,
                       const std::vector<std::string>& env,
                       const GroupOptions& options, GroupSnapshot& out) {
  const Clock::time_point start = Clock::now();
  Hold hold(dm, host);
  Watchdog watchdog(options.freeze_bound, [&hold] { (void)hold.ReleaseAll(); });
  auto expired = [&]() -> absl::Status {
    if (!watchdog.fired()) return absl::OkStatus();
    return absl::DeadlineExceededError(absl::StrCat(
        "the window exceeded the freeze bound of ",
        options.freeze_bound.count(),
        " ms: the watchdog resumed I/O and thawed the filesystems; no "
        "snapshot is kept. Find what hung (hooks, devices) or raise the "
        "bound"));
  };

  absl::Status st;
  std::set<std::string> seen_mounts;
  // freeze=false: the members are only suspended (flush, no lockfs), so the
  // snapshots are crash-consistent, as if the power had been cut.
  for (const WindowMember& m : members) {
    if (!options.freeze) break;
    // An era member's filesystem is on the era device above it.
    for (const VolumeInfo* v :
         {&out.members[m.index],
          out.era_above[m.index] ? &*out.era_above[m.index] : nullptr}) {
      if (v == nullptr || !st.ok()) continue;
      absl::StatusOr<std::vector<std::string>> mps =
          host.MountPoints(v->major, v->minor);
      if (!mps.ok()) {
        st = mps.status();
        break;
      }
      for (const std::string& mp : *mps) {
        if (!seen_mounts.insert(mp).second) continue;
        st = hold.Freeze(mp);
        if (!st.ok()) break;
      }
    }
    if (!st.ok()) break;
  }
  // An era device above a member is not suspended: holding the LV below
  // holds its writes too (era marks a block, then passes the write down,
  // where it waits), and a suspended era device blocks every status query
  // (its worker stops), which lvcreate makes of every dm device.
  for (size_t k = 0; st.ok() && k < members.size(); ++k) {
    st = hold.Suspend(out.members[members[k].index].dm_name);
  }
  if (st.ok()) {
    st = RunHooks(host, options.frozen_hooks, env, "frozen",
                  options.hook_timeout);
  }
  for (size_t k = 0; st.ok() && k < members.size(); ++k) {
    st = expired();
    if (!st.ok()) break;
    const VolumeInfo& v = out.members[members[k].index];
    if (members[k].thin_snap_id.has_value()) {
      st = RetakeThinSnapshot(dm, v.pool_dm_name, *members[k].thin_snap_id,
                              *v.thin_id);
    } else if (members[k].thick) {
      absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
          snapshotter.Create(v, names[members[k].index]);
      st = snap.status();
      if (st.ok()) out.snapshots[members[k].index] = *std::move(snap);
    } else {
      st = snapshotter.TakeDm(v, names[members[k].index]);
    }
  }
  absl::Status released = hold.ReleaseAll();
  watchdog.Stop();
  out.window = std::chrono::duration_cast<std::chrono::milliseconds>(
      Clock::now() - start);
  // The watchdog's verdict wins: whatever else failed raced with it.
  if (absl::Status w = expired(); !w.ok()) {
    return st.ok() ? w
                   : absl::Status(w.code(), absl::StrCat(w.message(), " (",
                                                         st.message(), ")"));
  }
  if (!st.ok()) return st;
  return released;
}

bool IsDmMember(const VolumeInfo& v) {
  return v.kind == VolumeKind::kOtherDm && v.not_snapshottable_reason.empty();
}

// Snapshots the members `which` at one instant: thin snapshots are made
// inactive first and re-taken in the window, dm members' helper devices are
// made first and their snapshots in the window, thick members are
// lvcreate'd in it when there is a window to share.
absl::Status SnapshotTogether(Snapshotter& snapshotter, DeviceMapper& dm,
                              Host& host, const std::vector<size_t>& which,
                              const std::vector<std::string>& names,
                              const std::vector<std::string>& env,
                              const GroupOptions& options, GroupSnapshot& out) {
  std::vector<size_t> thin;
  std::vector<WindowMember> window;
  for (size_t i : which) {
    if (out.members[i].kind != VolumeKind::kThinLv) continue;
    absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
        snapshotter.Create(out.members[i], names[i], /*activate=*/false);
    if (!snap.ok()) return snap.status();
    out.snapshots[i] = *std::move(snap);
    thin.push_back(i);
  }
  if (!thin.empty()) {
    // One lvs for all the new snapshots' thin ids.
    absl::StatusOr<std::vector<SnapshotInfo>> ours = snapshotter.List();
    if (!ours.ok()) return ours.status();
    for (size_t i : thin) {
      const SnapshotInfo* info = nullptr;
      for (const SnapshotInfo& s : *ours) {
        if (s.vg == out.members[i].vg && s.name == names[i]) info = &s;
      }
      if (info == nullptr || !info->thin_id.has_value() ||
          !out.members[i].thin_id.has_value()) {
        return absl::InternalError(
            absl::StrCat("lvs reported no thin id for the new snapshot ",
                         names[i], " of ", out.members[i].path));
      }
      if (info->active) {  // lvm.conf may disable the activation-skip flag
        absl::Status st = snapshotter.Deactivate(info->vg, info->name);
        if (!st.ok()) return st;
      }
      window.push_back({i, *info->thin_id});
    }
  }
  // dm members: helper devices now, the snapshot itself in the window.
  for (size_t i : which) {
    if (!IsDmMember(out.members[i])) continue;
    absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
        snapshotter.PrepareDm(out.members[i], names[i]);
    if (!snap.ok()) return snap.status();
    out.snapshots[i] = *std::move(snap);
    window.push_back({i, std::nullopt});
  }
  // Thick members join the window when there is one to share (several
  // members, frozen hooks, an era device to hold); alone, lvcreate's own
  // suspend is the window.
  for (size_t i : which) {
    if (out.members[i].kind != VolumeKind::kThickLv) continue;
    if (which.size() > 1 || !options.frozen_hooks.empty() ||
        out.era_above[i].has_value()) {
      window.push_back({i, std::nullopt, /*thick=*/true});
    }
  }
  if (!window.empty()) {
    absl::Status st =
        RunWindow(snapshotter, dm, host, window, names, env, options, out);
    if (!st.ok()) return st;
    for (size_t i : thin) {
      st = snapshotter.Activate(*out.snapshots[i]);
      if (!st.ok()) return st;
    }
  }
  for (size_t i : which) {
    if (out.snapshots[i] != nullptr) continue;
    absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
        snapshotter.Create(out.members[i], names[i]);
    if (!snap.ok()) return snap.status();
    out.snapshots[i] = *std::move(snap);
  }
  return absl::OkStatus();
}

// Everything between the pre-hooks and the post-hooks.
absl::Status SnapshotMembers(Snapshotter& snapshotter, DeviceMapper& dm,
                             Host& host, const std::vector<std::string>& names,
                             const std::vector<std::string>& env,
                             const GroupOptions& options, GroupSnapshot& out) {
  out.snapshots.resize(out.members.size());
  std::vector<size_t> all;
  for (size_t i = 0; i < out.members.size(); ++i) all.push_back(i);
  if (!options.sequential) {
    return SnapshotTogether(snapshotter, dm, host, all, names, env, options,
                            out);
  }
  for (size_t i : all) {
    // dm and era members get a window of their own (their filesystem is
    // frozen there, as lvcreate freezes an LV's); LVs get lvcreate's.
    absl::Status st;
    if (IsDmMember(out.members[i]) || out.era_above[i].has_value()) {
      st = SnapshotTogether(snapshotter, dm, host, {i}, names, env, options,
                            out);
    } else {
      absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
          snapshotter.Create(out.members[i], names[i]);
      st = snap.status();
      if (st.ok()) out.snapshots[i] = *std::move(snap);
    }
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

// What `path` is, and when it is an era device (a cbtd era stack), the LV
// below it that is snapshotted in its place (the era device in `above`).
absl::StatusOr<VolumeInfo> DiscoverMember(Snapshotter& snapshotter,
                                          const std::string& path,
                                          std::optional<VolumeInfo>& above) {
  absl::StatusOr<VolumeInfo> v = snapshotter.Discover(path);
  if (!v.ok() || v->kind != VolumeKind::kEraDevice ||
      !v->not_snapshottable_reason.empty()) {
    return v;
  }
  above = *std::move(v);
  absl::StatusOr<VolumeInfo> below =
      snapshotter.Discover(above->era_origin_path);
  if (!below.ok()) return below.status();
  snapshotter.InheritCowSize(above->path, below->path);
  if (below->kind != VolumeKind::kThinLv &&
      below->kind != VolumeKind::kThickLv) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot snapshot ", path, ": dm-era device ", above->dm_name,
        " is over ", below->path, ", which is not an LV (",
        below->not_snapshottable_reason.empty()
            ? std::string(VolumeKindName(below->kind))
            : below->not_snapshottable_reason,
        "); cbtd snapshots the thin or thick LV below an era device"));
  }
  return below;
}

}  // namespace

absl::StatusOr<GroupSnapshot> TakeGroupSnapshot(
    Snapshotter& snapshotter, DeviceMapper& dm, Host& host,
    const std::vector<std::string>& paths, const GroupOptions& options) {
  if (paths.empty()) {
    return absl::InvalidArgumentError("a consistency group needs a volume");
  }
  GroupSnapshot out;
  std::set<std::pair<uint32_t, uint32_t>> devices;
  for (const std::string& p : paths) {
    std::optional<VolumeInfo> above;
    absl::StatusOr<VolumeInfo> v = DiscoverMember(snapshotter, p, above);
    if (!v.ok()) return v.status();
    const bool fresh =
        devices.insert({v->major, v->minor}).second &&
        (!above || devices.insert({above->major, above->minor}).second);
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat(
          p, " is given twice in group ", options.group_name,
          above ? " (an era device and the LV below it are one volume)" : ""));
    }
    out.members.push_back(*std::move(v));
    out.era_above.push_back(std::move(above));
  }
  if (absl::Status st = snapshotter.CheckCanSnapshot(out.members); !st.ok()) {
    return st;
  }
  if (!options.frozen_hooks.empty() && options.sequential) {
    return absl::InvalidArgumentError(absl::StrCat(
        "group ", options.group_name,
        ": frozen-hooks run in the window, and a --sequential group has "
        "none; use a pre-hook"));
  }
  const auto when = options.when.value_or(std::chrono::system_clock::now());
  std::vector<std::string> names;
  absl::StatusOr<std::vector<SnapshotInfo>> existing = snapshotter.List();
  if (!existing.ok()) return existing.status();
  for (const VolumeInfo& v : out.members) {
    names.push_back(IsDmMember(v) ? DmSnapshotName(v.dm_name, when)
                                  : SnapshotName(v.lv, when));
    for (const SnapshotInfo& s : *existing) {
      if (s.vg == v.vg && s.name == names.back()) {
        return absl::FailedPreconditionError(
            absl::StrCat("snapshot ", s.FullName(),
                         " exists already (taken in the same second); retry"));
      }
    }
  }

  std::vector<std::string> env = {
      absl::StrCat("CBTD_GROUP=", options.group_name),
      absl::StrCat("CBTD_VOLUMES=", absl::StrJoin(paths, " ")),
      absl::StrCat("CBTD_SNAPSHOT_TIME=", SnapshotTimestamp(when))};

  absl::Status st =
      RunHooks(host, options.pre_hooks, env, "pre", options.hook_timeout);
  if (st.ok()) {
    st = SnapshotMembers(snapshotter, dm, host, names, env, options, out);
  }
  std::vector<std::string> post_env = env;
  post_env.push_back(absl::StrCat("CBTD_RESULT=", st.ok() ? "ok" : "failed"));
  // Every post-hook runs even if one fails: they undo what pre-hooks did.
  for (const std::string& hook : options.post_hooks) {
    absl::Status h =
        RunHooks(host, {hook}, post_env, "post", options.hook_timeout);
    st.Update(h);
  }
  if (!st.ok()) {
    std::string cleanup;
    for (auto& snap : out.snapshots) {
      if (snap == nullptr) continue;
      absl::Status r = snap->Remove();
      if (!r.ok()) {
        absl::StrAppend(&cleanup, "; also could not remove ",
                        snap->vg().empty() ? "dm" : snap->vg(), "/",
                        snap->name(), ": ", r.message());
      }
    }
    return absl::Status(st.code(), absl::StrCat("group ", options.group_name,
                                                ": ", st.message(), cleanup));
  }
  return out;
}

}  // namespace cbtd::snapshot
