#include "agent/file_point.h"

#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "snapshot/naming.h"

namespace cbtd::agent {
namespace {

constexpr char kCloneInfix[] = ".cbtd-";

// "DIR/.NAME.cbtd-" for image "DIR/NAME".
std::string ClonePrefix(const std::string& image) {
  const size_t slash = image.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : image.substr(0, slash);
  const std::string name =
      slash == std::string::npos ? image : image.substr(slash + 1);
  return absl::StrCat(dir, "/.", name, kCloneInfix);
}

// A reflink copy, or the live volume (with an exclusive hold on a block
// device); removes the copy when destroyed.
class FilePoint : public ConsistencyPoint {
 public:
  FilePoint(snapshot::Host& host, SnapshotRef ref, std::string clone,
            std::unique_ptr<snapshot::ExclusiveHold> hold)
      : host_(host), clone_(std::move(clone)), hold_(std::move(hold)) {
    refs_.push_back(std::move(ref));
  }
  ~FilePoint() override {
    if (!clone_.empty()) host_.RemoveFile(clone_).IgnoreError();
  }
  const std::vector<SnapshotRef>& snapshots() const override { return refs_; }
  // A run never keeps it (hash and external lists need no base); the
  // hypervisor's "consistency point only" does, and then owns the copy
  // (the next start removes it, like a kept LV snapshot).
  void Keep(const std::string&) override { clone_.clear(); }

 private:
  snapshot::Host& host_;
  std::vector<SnapshotRef> refs_;
  std::string clone_;
  std::unique_ptr<snapshot::ExclusiveHold> hold_;
};

}  // namespace

bool IsFileOrRawVolume(const snapshot::VolumeInfo& info) {
  return info.kind == snapshot::VolumeKind::kBlockDevice ||
         info.kind == snapshot::VolumeKind::kImageFile;
}

absl::StatusOr<std::unique_ptr<ConsistencyPoint>> TakeFileOrRawPoint(
    snapshot::Host& host, const ConsistencyRequest& request,
    const snapshot::VolumeInfo& info, absl::Time now) {
  const VolumeConfig& v = request.volumes.front();
  const bool file = info.kind == snapshot::VolumeKind::kImageFile;
  if (!request.group.empty() || request.volumes.size() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "group ", request.group, ": volume '", v.name, "' is ",
        file ? "an image file" : "a plain block device",
        ", which cannot share an instant with other volumes; back it up on "
        "its own (remove it from the group)"));
  }
  SnapshotRef ref{v.name, "", info.path};
  if (v.live_read) {
    std::unique_ptr<snapshot::ExclusiveHold> hold;
    if (!file) {
      absl::StatusOr<std::unique_ptr<snapshot::ExclusiveHold>> held =
          host.HoldExclusive(info.path);
      if (absl::IsFailedPrecondition(held.status())) {
        return absl::FailedPreconditionError(absl::StrCat(
            held.status().message(),
            ": snapshot = none reads a device live only while nothing uses "
            "it; unmount it, or put the data on an LV that cbtd can "
            "snapshot"));
      }
      if (!held.ok()) return held.status();
      hold = *std::move(held);
    }
    return std::make_unique<FilePoint>(host, std::move(ref), "",
                                       std::move(hold));
  }
  if (!file) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume '", v.name, "': ", info.not_snapshottable_reason));
  }
  const std::string clone = absl::StrCat(
      ClonePrefix(info.path),
      snapshot::SnapshotTimestamp(
          std::chrono::system_clock::from_time_t(absl::ToTimeT(now))));
  absl::Status st = host.CloneFile(info.path, clone);
  if (absl::IsUnimplemented(st)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume '", v.name, "': ", st.message(),
        ", so there is no point-in-time copy to read; put the image on XFS "
        "(reflink=1) or btrfs, or on an LV, or set snapshot = none to read "
        "it live while nothing writes to it"));
  }
  if (!st.ok()) return st;
  ref.snapshot_name = clone;
  ref.device_path = clone;
  return std::make_unique<FilePoint>(host, std::move(ref), clone, nullptr);
}

std::vector<std::string> RemoveStaleClones(snapshot::Host& host,
                                           const std::string& image) {
  std::vector<std::string> removed;
  const std::string prefix = ClonePrefix(image);
  const size_t slash = prefix.rfind('/');
  const std::string dir = prefix.substr(0, slash);
  for (const std::string& name :
       host.ListDirectory(dir, prefix.substr(slash + 1))) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (host.RemoveFile(path).ok()) {
      removed.push_back(absl::StrCat("removed stale copy ", path));
    }
  }
  return removed;
}

}  // namespace cbtd::agent
