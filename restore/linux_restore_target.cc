// The Linux RestoreTargets: a regular file, a block device, or /dev/null.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/block_device.h"
#include "common/fs.h"
#include "common/libdevmapper.h"
#include "common/unique_fd.h"
#include "restore/restore.h"

namespace cbtd::restore {
namespace {

using common::ErrnoStatus;

class LinuxRestoreTarget : public RestoreTarget {
 public:
  LinuxRestoreTarget(std::string path, common::OpenedDevice dev, bool fresh,
                     bool created)
      : fd_(std::move(dev.fd)),
        path_(std::move(path)),
        is_device_(dev.is_block_device),
        size_(dev.size_bytes),
        fresh_(fresh),
        created_(created) {}
  ~LinuxRestoreTarget() override {
    fd_.reset();
    // A file this restore created and never finished: nothing stays.
    if (created_ && !kept_) ::unlink(path_.c_str());
  }
  LinuxRestoreTarget(const LinuxRestoreTarget&) = delete;
  LinuxRestoreTarget& operator=(const LinuxRestoreTarget&) = delete;

  uint64_t SizeBytes() const override { return size_; }
  bool fresh() const override { return fresh_; }
  void Keep() override { kept_ = true; }

  absl::Status Resize(uint64_t size) override {
    if (is_device_) {
      if (size_ < size) {
        return absl::FailedPreconditionError(absl::StrCat(
            "target device ", path_, " holds ", size_,
            " bytes but the version needs ", size, "; use a larger device"));
      }
      return absl::OkStatus();
    }
    if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoStatus(errno, absl::StrCat("truncate ", path_));
    }
    size_ = size;
    return absl::OkStatus();
  }

  absl::Status WriteAt(uint64_t offset,
                       std::span<const uint8_t> data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return ErrnoStatus(errno, absl::StrCat("write at offset ",
                                               offset + done, " of ", path_));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Zero(uint64_t offset, uint64_t length) override {
    if (is_device_) {
      uint64_t range[2] = {offset, length};
      if (::ioctl(fd_.get(), BLKZEROOUT, range) == 0) return absl::OkStatus();
    } else if (::fallocate(fd_.get(),
                           FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           static_cast<off_t>(offset),
                           static_cast<off_t>(length)) == 0) {
      return absl::OkStatus();
    }
    // No hole punching / zero-out here: write zeros.
    static const std::string kZeros(1 << 20, '\0');
    for (uint64_t done = 0; done < length;) {
      const uint64_t n = std::min<uint64_t>(kZeros.size(), length - done);
      if (auto s = WriteAt(offset + done,
                           {reinterpret_cast<const uint8_t*>(kZeros.data()),
                            static_cast<size_t>(n)});
          !s.ok()) {
        return s;
      }
      done += n;
    }
    return absl::OkStatus();
  }

  absl::Status ReadAt(uint64_t offset, std::span<uint8_t> buf) override {
    size_t done = 0;
    while (done < buf.size()) {
      ssize_t n = ::pread(fd_.get(), buf.data() + done, buf.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return ErrnoStatus(errno, absl::StrCat("read at offset ", offset + done,
                                               " of ", path_));
      }
      if (n == 0) {
        return absl::DataLossError(
            absl::StrCat(path_, " ends at byte ", offset + done));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Sync() override {
    if (::fsync(fd_.get()) != 0)
      return ErrnoStatus(errno, absl::StrCat("fsync ", path_));
    return absl::OkStatus();
  }

 private:
  common::UniqueFd fd_;
  std::string path_;
  bool is_device_;
  uint64_t size_;
  bool fresh_;
  const bool created_;  // by OpenRestoreTarget (O_CREAT | O_EXCL)
  bool kept_ = false;
};

// /dev/null: every chunk is read, decrypted and checked, and the bytes are
// dropped (a restore test that needs no space, and the bench's measure of
// the read side alone). Nothing can be read back.
class DiscardRestoreTarget : public RestoreTarget {
 public:
  uint64_t SizeBytes() const override { return size_; }
  bool fresh() const override { return true; }
  void Keep() override {}
  absl::Status Resize(uint64_t size) override {
    size_ = size;
    return absl::OkStatus();
  }
  absl::Status WriteAt(uint64_t, std::span<const uint8_t>) override {
    return absl::OkStatus();
  }
  absl::Status Zero(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status ReadAt(uint64_t, std::span<uint8_t>) override {
    return absl::FailedPreconditionError(
        "restore target /dev/null keeps nothing to read back: --verify and "
        "--from need a file or a block device");
  }
  absl::Status Sync() override { return absl::OkStatus(); }

 private:
  uint64_t size_ = 0;
};

}  // namespace

bool IsDiscardTarget(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode) &&
         st.st_rdev == makedev(1, 3);
}

absl::StatusOr<std::unique_ptr<RestoreTarget>> OpenRestoreTarget(
    const std::string& path) {
  if (IsDiscardTarget(path)) return std::make_unique<DiscardRestoreTarget>();
  struct stat st;
  bool fresh = false;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(errno, absl::StrCat("stat ", path));
    fresh = true;
  }
  const bool created = fresh;
  // O_EXCL on an existing block device is an exclusive open: EBUSY if a
  // filesystem is mounted on it or device-mapper or md holds it, so a
  // restore never writes under a live user.
  const bool block = !created && S_ISBLK(st.st_mode);
  // O_EXCL below does not see a process (a VM's qemu) that opened the
  // device without it; device-mapper counts every open.
  if (block) {
    absl::StatusOr<std::optional<common::DmInfo>> dm =
        common::DmInfoByDevice(major(st.st_rdev), minor(st.st_rdev));
    if (dm.ok() && dm->has_value() && (*dm)->open_count > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "restore target ", path, " is in use: device-mapper device ",
          (*dm)->name, " is open ", (*dm)->open_count,
          " time(s) (a mount, a VM, a process or a stacked device); stop "
          "what uses it: a restore never writes under a live user"));
    }
  }
  absl::StatusOr<common::OpenedDevice> dev = common::OpenBlockDevice(
      path, O_RDWR | (created ? O_CREAT | O_EXCL : 0) | (block ? O_EXCL : 0),
      0640);
  if (!dev.ok() && created) ::unlink(path.c_str());
  if (block && absl::IsUnavailable(dev.status())) {  // EBUSY
    return absl::FailedPreconditionError(absl::StrCat(
        "restore target ", path,
        " is in use (mounted, or held by a device-mapper or md device); "
        "unmount it or stop what holds it: a restore never writes under a "
        "live filesystem"));
  }
  if (absl::IsInvalidArgument(dev.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("restore target ", dev.status().message()));
  }
  if (!dev.ok()) return dev.status();
  fresh = fresh || (!dev->is_block_device && dev->size_bytes == 0);
  return std::make_unique<LinuxRestoreTarget>(path, *std::move(dev), fresh,
                                              created);
}

}  // namespace cbtd::restore
