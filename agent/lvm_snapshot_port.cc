#include "agent/lvm_snapshot_port.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/file_point.h"
#include "snapshot/caching_lvm.h"
#include "snapshot/consistency_group.h"
#include "snapshot/cow_guard.h"
#include "snapshot/naming.h"
#include "snapshot/volume.h"

namespace cbtd::agent {
namespace {

std::chrono::milliseconds Millis(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

// The snapshots of one TakeGroupSnapshot. Members are destroyed in reverse
// order: the group (whose ScopedSnapshots remove what was not kept) before
// the Snapshotter they point to, and that before its Lvm.
class LvmConsistencyPoint : public ConsistencyPoint {
 public:
  LvmConsistencyPoint(std::unique_ptr<snapshot::CachingLvm> lvm,
                      std::unique_ptr<snapshot::Snapshotter> snapshotter,
                      snapshot::GroupSnapshot group,
                      std::vector<SnapshotRef> refs,
                      std::unique_ptr<snapshot::CowGuard> guard)
      : lvm_(std::move(lvm)),
        snapshotter_(std::move(snapshotter)),
        group_(std::move(group)),
        refs_(std::move(refs)),
        guard_(std::move(guard)) {}

  const std::vector<SnapshotRef>& snapshots() const override { return refs_; }

  std::string Overflow(const std::string& volume) override {
    return guard_->Overflow(volume);
  }

  void Keep(const std::string& volume) override {
    for (size_t i = 0; i < refs_.size(); ++i) {
      if (refs_[i].volume == volume) group_.snapshots[i]->Release();
    }
  }

 private:
  std::unique_ptr<snapshot::CachingLvm> lvm_;
  std::unique_ptr<snapshot::Snapshotter> snapshotter_;
  snapshot::GroupSnapshot group_;
  std::vector<SnapshotRef> refs_;
  // Destroyed first: it stops watching before any snapshot is removed.
  std::unique_ptr<snapshot::CowGuard> guard_;
};

// The first of `devices` no device-mapper device holds (the base
// snapshot's COW store holds the other); the first one if both look free
// or neither does (the snapshot engine then refuses it, naming it).
std::string FreeCowDevice(const std::vector<std::string>& devices) {
  for (const std::string& d : devices) {
    struct stat st;
    if (::stat(d.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)) continue;
    const std::string holders =
        absl::StrCat("/sys/dev/block/", major(st.st_rdev), ":",
                     minor(st.st_rdev), "/holders");
    std::error_code ec;
    if (std::filesystem::is_empty(holders, ec) && !ec) return d;
  }
  return devices.front();
}

// Where each of the point's snapshots can be read (lvs knows the dm path
// once active), and its thick snapshots for the COW guard.
struct PointSnapshots {
  std::vector<SnapshotRef> refs;
  std::vector<snapshot::GuardedSnapshot> thick;
};
absl::StatusOr<PointSnapshots> DescribeSnapshots(
    snapshot::Snapshotter& snapshotter, const snapshot::GroupSnapshot& group,
    const ConsistencyRequest& request) {
  PointSnapshots out;
  for (size_t i = 0; i < group.snapshots.size(); ++i) {
    const snapshot::ScopedSnapshot& s = *group.snapshots[i];
    const VolumeConfig& v = request.volumes[i];
    absl::StatusOr<snapshot::SnapshotInfo> info =
        snapshotter.Get(s.vg(), s.name());
    if (!info.ok()) return info.status();
    if (!info->active || info->device_path.empty()) {
      return absl::InternalError(absl::StrCat(
          "snapshot ", info->FullName(), " of ", v.path,
          " is not active after the consistency point; nothing is kept"));
    }
    out.refs.push_back(
        SnapshotRef{v.name, info->FullName(), info->device_path});
    if (info->kind == snapshot::VolumeKind::kThickLv) {
      out.thick.push_back(
          {v.name, info->vg, info->name,
           v.cow_max_size.BytesFor(group.members[i].size_bytes)});
    }
  }
  return out;
}

snapshot::GroupOptions GroupOptionsFor(const ConsistencyRequest& request) {
  snapshot::GroupOptions options;
  options.group_name =
      request.group.empty() ? request.volumes.front().name : request.group;
  options.pre_hooks = request.pre_hooks;
  options.frozen_hooks = request.frozen_hooks;
  options.post_hooks = request.post_hooks;
  options.hook_timeout = Millis(request.hook_timeout);
  options.freeze_bound = Millis(request.freeze_timeout);
  options.freeze = request.freeze;
  options.sequential = request.sequential;
  return options;
}

// COW extensions go to the journal (cbtd's stderr): one says that the
// volume's cow_size is small.
void LogCowNote(const std::string& line) {
  std::cerr << "cbtd: " << line << std::endl;
}

}  // namespace

snapshot::SnapshotPolicy LvmSnapshotPort::PolicyFor(
    const ConsistencyRequest& request) const {
  snapshot::SnapshotPolicy policy = defaults_;
  for (const VolumeConfig& v : request.volumes) {
    if (!v.cow_devices.empty()) {
      policy.dm_cow_device_for[v.path] = FreeCowDevice(v.cow_devices);
    }
    if (v.cow_size.bytes > 0) {
      policy.cow_size_bytes_for[v.path] = v.cow_size.bytes;
    } else {
      policy.cow_percent_for[v.path] = v.cow_size.percent_of_origin;
    }
    if (v.cow_max_size.bytes > 0) {
      policy.cow_limit_bytes_for[v.path] = v.cow_max_size.bytes;
    } else {
      policy.cow_limit_percent_for[v.path] = v.cow_max_size.percent_of_origin;
    }
  }
  return policy;
}

absl::StatusOr<std::optional<snapshot::VolumeInfo>>
LvmSnapshotPort::FileOrRawMember(const std::string& path) {
  // Cheap first: an LV or dm device is a block device with dm info, and
  // DiscoverVolume would ask lvm2 about it.
  absl::StatusOr<snapshot::BlockDeviceId> id = host_.StatBlockDevice(path);
  if (id.ok()) {
    absl::StatusOr<std::optional<snapshot::DmInfo>> dm =
        dm_.InfoByDevice(id->major, id->minor);
    if (!dm.ok()) return dm.status();
    if (dm->has_value()) return std::nullopt;
  } else if (!absl::IsInvalidArgument(id.status())) {
    return std::nullopt;  // TakeGroupSnapshot reports it
  }
  absl::StatusOr<snapshot::VolumeInfo> info =
      snapshot::DiscoverVolume(path, lvm_, dm_, host_);
  if (!info.ok()) return info.status();
  if (!IsFileOrRawVolume(*info)) return std::nullopt;
  return *std::move(info);
}

absl::StatusOr<std::unique_ptr<ConsistencyPoint>> LvmSnapshotPort::Take(
    const ConsistencyRequest& request) {
  if (request.volumes.empty()) {
    return absl::InvalidArgumentError("a consistency point needs a volume");
  }
  for (const VolumeConfig& v : request.volumes) {
    absl::StatusOr<std::optional<snapshot::VolumeInfo>> raw =
        FileOrRawMember(v.path);
    if (!raw.ok()) return raw.status();
    if (raw->has_value()) {
      return TakeFileOrRawPoint(host_, request, **raw, absl::Now());
    }
  }
  // One lvs report serves the whole point (each member's discovery, the
  // name check, the snapshots' devices) unless a change is made.
  auto lvm = std::make_unique<snapshot::CachingLvm>(lvm_);
  auto snapshotter = std::make_unique<snapshot::Snapshotter>(
      *lvm, dm_, host_, PolicyFor(request));
  std::vector<std::string> paths;
  for (const VolumeConfig& v : request.volumes) paths.push_back(v.path);

  absl::StatusOr<snapshot::GroupSnapshot> group = snapshot::TakeGroupSnapshot(
      *snapshotter, dm_, host_, paths, GroupOptionsFor(request));
  if (!group.ok()) return group.status();
  for (const std::string& note : snapshotter->notes()) LogCowNote(note);
  // On error `group` removes every snapshot.
  absl::StatusOr<PointSnapshots> described =
      DescribeSnapshots(*snapshotter, *group, request);
  if (!described.ok()) return described.status();
  // The point lives as long as its run: from now on, lvm2 as it is.
  lvm->StopCaching();
  snapshot::CowGuardOptions guard_options;
  guard_options.on_note = LogCowNote;
  auto guard = std::make_unique<snapshot::CowGuard>(
      lvm_, dm_, std::move(described->thick), guard_options);
  return std::unique_ptr<ConsistencyPoint>(new LvmConsistencyPoint(
      std::move(lvm), std::move(snapshotter), *std::move(group),
      std::move(described->refs), std::move(guard)));
}

absl::Status LvmSnapshotPort::RemoveSnapshot(const std::string& volume,
                                             const std::string& snapshot_name) {
  if (snapshot_name.empty()) return absl::OkStatus();  // a live read
  if (snapshot_name.starts_with("/")) {  // an image file's reflink copy
    return host_.RemoveFile(snapshot_name);
  }
  std::string vg, name;
  if (!snapshot::SplitFullName(snapshot_name, &vg, &name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("base snapshot '", snapshot_name, "' of ", volume,
                     " is not VG/LV; remove it with lvremove if it exists"));
  }
  snapshot::Snapshotter snapshotter(lvm_, dm_, host_, defaults_);
  absl::Status s = snapshotter.Remove(vg, name);
  if (absl::IsNotFound(s)) return absl::OkStatus();
  return s;
}

absl::StatusOr<std::vector<std::string>> LvmSnapshotPort::ReleaseStaleHolds(
    const std::vector<std::string>& paths) {
  std::vector<std::string> done;
  std::vector<std::string> todo = paths;
  snapshot::CachingLvm lvm(lvm_);  // one lvs report for every volume
  for (size_t k = 0; k < todo.size(); ++k) {
    const std::string path = todo[k];
    absl::StatusOr<snapshot::VolumeInfo> v =
        snapshot::DiscoverVolume(path, lvm, dm_, host_);
    // Missing, or not a device cbtd could have held (a file): nothing to do.
    if (absl::IsNotFound(v.status()) || absl::IsInvalidArgument(v.status())) {
      continue;
    }
    if (!v.ok()) return v.status();
    if (v->kind == snapshot::VolumeKind::kImageFile) {
      for (std::string& line : RemoveStaleClones(host_, v->path)) {
        done.push_back(std::move(line));
      }
      continue;
    }
    // The LV below an era device was held with it.
    if (!v->era_origin_path.empty()) todo.push_back(v->era_origin_path);
    if (!v->dm_name.empty()) {
      absl::StatusOr<std::optional<snapshot::DmInfo>> info =
          dm_.InfoByDevice(v->major, v->minor);
      if (!info.ok()) return info.status();
      if (info->has_value() && (*info)->suspended) {
        if (absl::Status s = dm_.Resume(v->dm_name); !s.ok()) return s;
        done.push_back(absl::StrCat("resumed ", v->dm_name, " (", path, ")"));
      }
    }
    absl::StatusOr<std::vector<std::string>> mounts =
        host_.MountPoints(v->major, v->minor);
    if (!mounts.ok()) return mounts.status();
    for (const std::string& mp : *mounts) {
      if (host_.Thaw(mp).ok()) done.push_back(absl::StrCat("thawed ", mp));
    }
  }
  return done;
}

absl::Status LvmSnapshotPort::RemoveOrphans(
    const std::vector<std::string>& keep) {
  snapshot::CachingLvm lvm(
      lvm_);  // one report for the listing and the first removal
  snapshot::Snapshotter snapshotter(lvm, dm_, host_, defaults_);
  const std::set<std::string> keep_set(keep.begin(), keep.end());
  return snapshotter.RemoveOrphans(keep_set).status();
}

}  // namespace cbtd::agent
