#include "agent/file_point.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "common/unique_fd.h"
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
  FilePoint(SnapshotRef ref, std::string clone, common::UniqueFd hold)
      : clone_(std::move(clone)), hold_(std::move(hold)) {
    refs_.push_back(std::move(ref));
  }
  ~FilePoint() override {
    if (!clone_.empty()) ::unlink(clone_.c_str());
  }
  const std::vector<SnapshotRef>& snapshots() const override { return refs_; }
  // A run never keeps it (hash and external lists need no base); the
  // hypervisor's "consistency point only" does, and then owns the copy
  // (the next start removes it, like a kept LV snapshot).
  void Keep(const std::string&) override { clone_.clear(); }

 private:
  std::vector<SnapshotRef> refs_;
  std::string clone_;
  common::UniqueFd hold_;
};

absl::StatusOr<common::UniqueFd> HoldBlockDevice(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
  if (fd) return fd;
  if (errno == EBUSY) {
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        " is in use (mounted, or held by a device-mapper or md device): "
        "snapshot = none reads a device live only while nothing uses it; "
        "unmount it, or put the data on an LV that cbtd can snapshot"));
  }
  return common::ErrnoStatus(errno, absl::StrCat("open ", path));
}

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
    common::UniqueFd hold;
    if (!file) {
      absl::StatusOr<common::UniqueFd> fd = HoldBlockDevice(info.path);
      if (!fd.ok()) return fd.status();
      hold = *std::move(fd);
    }
    return std::make_unique<FilePoint>(std::move(ref), "", std::move(hold));
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
  return std::make_unique<FilePoint>(std::move(ref), clone, common::UniqueFd());
}

std::vector<std::string> RemoveStaleClones(const std::string& image) {
  std::vector<std::string> removed;
  const std::string prefix = ClonePrefix(image);
  const size_t slash = prefix.rfind('/');
  const std::string dir = prefix.substr(0, slash);
  const std::string name_prefix = prefix.substr(slash + 1);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return removed;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!absl::StartsWith(name, name_prefix)) continue;
    const std::string path = absl::StrCat(dir, "/", name);
    if (::unlink(path.c_str()) == 0) {
      removed.push_back(absl::StrCat("removed stale copy ", path));
    }
  }
  ::closedir(d);
  return removed;
}

}  // namespace cbtd::agent
