#include "snapshot/consistency_group.h"

#include <condition_variable>
#include <functional>
#include <mutex>
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

// Freeze, hold, frozen-hooks, snapshot all, release. Fills `out`.
absl::Status RunWindow(Snapshotter& snapshotter, DeviceMapper& dm, Host& host,
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
        "snapshot is kept. Find what hung (hooks, lvm2 locks) or raise the "
        "bound"));
  };

  absl::Status st;
  std::set<std::string> seen_mounts;
  for (const VolumeInfo& v : out.members) {
    absl::StatusOr<std::vector<std::string>> mps =
        host.MountPoints(v.major, v.minor);
    if (!mps.ok()) {
      st = mps.status();
      break;
    }
    for (const std::string& mp : *mps) {
      if (!seen_mounts.insert(mp).second) continue;
      st = hold.Freeze(mp);
      if (!st.ok()) break;
    }
    if (!st.ok()) break;
  }
  if (st.ok() && options.hold_io) {
    for (const VolumeInfo& v : out.members) {
      st = hold.Suspend(v.dm_name);
      if (!st.ok()) break;
    }
  }
  if (st.ok()) {
    st = RunHooks(host, options.frozen_hooks, env, "frozen",
                  options.hook_timeout);
  }
  for (size_t i = 0; st.ok() && i < out.members.size(); ++i) {
    st = expired();
    if (!st.ok()) break;
    absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
        snapshotter.Create(out.members[i], names[i]);
    if (!snap.ok()) {
      st = snap.status();
      break;
    }
    out.snapshots.push_back(*std::move(snap));
  }
  absl::Status released = hold.ReleaseAll();
  watchdog.Stop();
  out.window = std::chrono::duration_cast<std::chrono::milliseconds>(
      Clock::now() - start);
  // The watchdog's verdict wins: whatever else failed, it was caused by or
  // raced with the forced release.
  if (absl::Status w = expired(); !w.ok()) {
    return st.ok() ? w
                   : absl::Status(w.code(), absl::StrCat(w.message(), " (",
                                                         st.message(), ")"));
  }
  if (!st.ok()) return st;
  return released;
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
    absl::StatusOr<VolumeInfo> v = snapshotter.Discover(p);
    if (!v.ok()) return v.status();
    if (!devices.insert({v->major, v->minor}).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(p, " is given twice in group ", options.group_name));
    }
    out.members.push_back(*std::move(v));
  }
  if (absl::Status st = snapshotter.CheckCanSnapshot(out.members); !st.ok()) {
    return st;
  }
  const auto when = options.when.value_or(std::chrono::system_clock::now());
  std::vector<std::string> names;
  for (const VolumeInfo& v : out.members) {
    names.push_back(SnapshotName(v.lv, when));
    absl::StatusOr<SnapshotInfo> existing = snapshotter.Get(v.vg, names.back());
    if (!absl::IsNotFound(existing.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "an LV named ", v.vg, "/", names.back(),
          " exists already (a snapshot taken in the same second?); retry"));
    }
  }

  std::vector<std::string> env = {
      absl::StrCat("CBTD_GROUP=", options.group_name),
      absl::StrCat("CBTD_VOLUMES=", absl::StrJoin(paths, " ")),
      absl::StrCat("CBTD_SNAPSHOT_TIME=",
                   ParseSnapshotName(names[0])->timestamp)};

  absl::Status st =
      RunHooks(host, options.pre_hooks, env, "pre", options.hook_timeout);
  if (st.ok()) {
    st = RunWindow(snapshotter, dm, host, names, env, options, out);
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
      absl::Status r = snap->Remove();
      if (!r.ok()) {
        absl::StrAppend(&cleanup, "; also could not remove ", snap->vg(), "/",
                        snap->name(), ": ", r.message());
      }
    }
    return absl::Status(st.code(), absl::StrCat("group ", options.group_name,
                                                ": ", st.message(), cleanup));
  }
  return out;
}

}  // namespace cbtd::snapshot
