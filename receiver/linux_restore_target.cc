// The Linux RestoreTarget: a regular file or a block device.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "receiver/restore.h"

namespace cbtd::receiver {
namespace {

using common::ErrnoStatus;

class LinuxRestoreTarget : public RestoreTarget {
 public:
  LinuxRestoreTarget(int fd, std::string path, bool is_device, uint64_t size,
                     bool fresh, bool created)
      : fd_(fd),
        path_(std::move(path)),
        is_device_(is_device),
        size_(size),
        fresh_(fresh),
        created_(created) {}
  ~LinuxRestoreTarget() override {
    ::close(fd_);
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
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return ErrnoStatus(errno, absl::StrCat("truncate ", path_));
    }
    size_ = size;
    return absl::OkStatus();
  }

  absl::Status WriteAt(uint64_t offset,
                       std::span<const uint8_t> data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
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
      if (::ioctl(fd_, BLKZEROOUT, range) == 0) return absl::OkStatus();
    } else if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
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
      ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done,
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
    if (::fsync(fd_) != 0)
      return ErrnoStatus(errno, absl::StrCat("fsync ", path_));
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
  bool is_device_;
  uint64_t size_;
  bool fresh_;
  const bool created_;  // by OpenRestoreTarget (O_CREAT | O_EXCL)
  bool kept_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RestoreTarget>> OpenRestoreTarget(
    const std::string& path) {
  struct stat st;
  bool fresh = false;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(errno, absl::StrCat("stat ", path));
    fresh = true;
  }
  const bool created = fresh;
  int fd = ::open(path.c_str(),
                  O_RDWR | O_CLOEXEC | (created ? O_CREAT | O_EXCL : 0), 0640);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    if (created) ::unlink(path.c_str());
    return ErrnoStatus(err, absl::StrCat("stat ", path));
  }
  uint64_t size = 0;
  bool device = S_ISBLK(st.st_mode);
  if (device) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, absl::StrCat("BLKGETSIZE64 ", path));
    }
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
    fresh = fresh || size == 0;
  } else {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("restore target ", path,
                     " is neither a regular file nor a block device"));
  }
  return std::unique_ptr<RestoreTarget>(
      new LinuxRestoreTarget(fd, path, device, size, fresh, created));
}

}  // namespace cbtd::receiver
