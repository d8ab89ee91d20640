// Host over Linux system calls: stat/ioctl for block devices and
// freezing, /proc/self/mountinfo for mounts, common::RunCommand for hooks.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/block_device.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/unique_fd.h"
#include "snapshot/host.h"
#include "snapshot/linux.h"

namespace cbtd::snapshot {
namespace {

// mountinfo escapes spaces etc. as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out += static_cast<char>(v);
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

class FdHold : public ExclusiveHold {
 public:
  explicit FdHold(common::UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  common::UniqueFd fd_;
};

class LinuxHost : public Host {
 public:
  absl::StatusOr<BlockDeviceId> StatBlockDevice(
      const std::string& path) override {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      return common::ErrnoStatus(errno, absl::StrCat("volume ", path));
    }
    if (!S_ISBLK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       " is not a block device; give an LV path such as "
                       "/dev/VG/LV or /dev/mapper/NAME"));
    }
    absl::StatusOr<common::OpenedDevice> dev =
        common::OpenBlockDevice(path, O_RDONLY);
    if (!dev.ok()) return dev.status();
    return BlockDeviceId{major(st.st_rdev), minor(st.st_rdev), dev->size_bytes};
  }

  absl::StatusOr<ImageFileId> StatImageFile(const std::string& path) override {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      return common::ErrnoStatus(errno, absl::StrCat("volume ", path));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is neither a block device nor a regular file"));
    }
    return ImageFileId{static_cast<uint64_t>(st.st_dev),
                       static_cast<uint64_t>(st.st_ino),
                       static_cast<uint64_t>(st.st_size)};
  }

  absl::Status CloneFile(const std::string& from,
                         const std::string& to) override {
    common::UniqueFd src(open(from.c_str(), O_RDONLY | O_CLOEXEC));
    if (!src) return common::ErrnoStatus(errno, absl::StrCat("open ", from));
    common::UniqueFd dst(
        open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!dst) return common::ErrnoStatus(errno, absl::StrCat("create ", to));
    if (ioctl(dst.get(), FICLONE, src.get()) != 0) {
      const int err = errno;
      unlink(to.c_str());
      if (err == EOPNOTSUPP || err == EXDEV || err == EINVAL || err == ENOTTY) {
        return absl::UnimplementedError(absl::StrCat(
            "the filesystem of ", from,
            " cannot make reflink copies (FICLONE: ", strerror(err), ")"));
      }
      return common::ErrnoStatus(err,
                                 absl::StrCat("FICLONE ", from, " to ", to));
    }
    return absl::OkStatus();
  }

  absl::Status RemoveFile(const std::string& path) override {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return common::ErrnoStatus(errno, absl::StrCat("remove ", path));
    }
    return absl::OkStatus();
  }

  std::vector<std::string> ListDirectory(const std::string& dir,
                                         const std::string& prefix) override {
    std::vector<std::string> names;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return names;
    while (const dirent* e = readdir(d)) {
      if (std::string_view(e->d_name).starts_with(prefix)) {
        names.emplace_back(e->d_name);
      }
    }
    closedir(d);
    return names;
  }

  absl::StatusOr<std::unique_ptr<ExclusiveHold>> HoldExclusive(
      const std::string& path) override {
    common::UniqueFd fd(open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC));
    if (!fd) {
      if (errno == EBUSY) {
        return absl::FailedPreconditionError(absl::StrCat(
            path,
            " is in use (mounted, or held by a device-mapper or md "
            "device)"));
      }
      return common::ErrnoStatus(errno, absl::StrCat("open ", path));
    }
    return std::make_unique<FdHold>(std::move(fd));
  }

  absl::Status ZeroStart(const std::string& path, uint64_t bytes) override {
    // O_EXCL on a block device: EBUSY if anything holds it (a mounted
    // filesystem, a dm table), so a store in use is never overwritten.
    common::UniqueFd fd(
        open(path.c_str(), O_WRONLY | O_DIRECT | O_EXCL | O_CLOEXEC));
    if (!fd) {
      if (errno == EBUSY) {
        return absl::FailedPreconditionError(absl::StrCat(
            path,
            " is in use (mounted, or held by a device-mapper device "
            "such as another snapshot's COW device); not touching it"));
      }
      return common::ErrnoStatus(errno, "open " + path);
    }
    constexpr size_t kBlock = 4096;
    void* buf = nullptr;
    if (posix_memalign(&buf, kBlock, kBlock) != 0) {
      return absl::ResourceExhaustedError("posix_memalign");
    }
    std::unique_ptr<void, decltype(&free)> owned(buf, &free);
    std::memset(buf, 0, kBlock);
    for (uint64_t off = 0; off < bytes; off += kBlock) {
      if (pwrite(fd.get(), buf, kBlock, static_cast<off_t>(off)) !=
          static_cast<ssize_t>(kBlock)) {
        return common::ErrnoStatus(errno, "zero the start of " + path);
      }
    }
    if (fsync(fd.get()) != 0)
      return common::ErrnoStatus(errno, "fsync " + path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> MountPoints(uint32_t maj,
                                                       uint32_t min) override {
    absl::StatusOr<std::string> text = common::ReadFile("/proc/self/mountinfo");
    if (!text.ok()) return text.status();
    const std::string dev = absl::StrCat(maj, ":", min);
    std::vector<std::string> out;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
      // id parent major:minor root mount-point ...
      if (f.size() < 5 || f[2] != dev) continue;
      // A bind mount of a subtree is the same filesystem; freezing one
      // mount point freezes it, so keep the mount of the root if any.
      if (f[3] != "/" && !out.empty()) continue;
      const std::string mp =
          Unescape(std::string_view(f[4].data(), f[4].size()));
      if (f[3] == "/") {
        out.assign(1, mp);
        break;
      }
      out.assign(1, mp);
    }
    return out;
  }

  absl::Status Freeze(const std::string& mount_point) override {
    return Ioctl(mount_point, FIFREEZE, "FIFREEZE");
  }
  absl::Status Thaw(const std::string& mount_point) override {
    return Ioctl(mount_point, FITHAW, "FITHAW");
  }

  absl::Status RunHook(const std::string& command,
                       const std::vector<std::string>& env,
                       std::chrono::milliseconds timeout) override {
    common::CommandOptions opts;
    opts.env = env;  // CBTD_GROUP, CBTD_PHASE, ... on a clean environment
    opts.clean_env = true;
    opts.timeout = timeout;
    absl::StatusOr<std::string> r =
        common::RunCommandOk({"/bin/sh", "-c", command}, opts);
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat("hook failed: ", r.status().message()));
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status Ioctl(const std::string& mount_point,
                            unsigned long request, const char* name) {
    common::UniqueFd fd(
        open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      return common::ErrnoStatus(errno, "open mount point " + mount_point);
    }
    if (ioctl(fd.get(), request, 0) != 0) {
      return common::ErrnoStatus(
          errno, absl::StrCat(name, " on the filesystem at ", mount_point));
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Host> NewLinuxHost() { return std::make_unique<LinuxHost>(); }

}  // namespace cbtd::snapshot
