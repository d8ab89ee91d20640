// Linux BlockReader: pread with O_DIRECT through an aligned bounce buffer.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cbt/block_reader.h"
#include "common/fs.h"

namespace cbtd::cbt {
namespace {

constexpr uint64_t kAlign = 4096;

class LinuxBlockReader : public BlockReader {
 public:
  LinuxBlockReader(std::string path, int fd, uint64_t size, bool direct)
      : path_(std::move(path)), fd_(fd), size_(size), direct_(direct) {}
  ~LinuxBlockReader() override {
    ::close(fd_);
    std::free(bounce_);
  }
  LinuxBlockReader(const LinuxBlockReader&) = delete;
  LinuxBlockReader& operator=(const LinuxBlockReader&) = delete;

  const std::string& name() const override { return path_; }
  uint64_t SizeBytes() const override { return size_; }

  absl::Status ReadAt(uint64_t offset_bytes, std::span<char> buf) override {
    if (offset_bytes > size_ || buf.size() > size_ - offset_bytes) {
      return absl::OutOfRangeError(
          absl::StrCat(path_, ": read of ", buf.size(), " bytes at ",
                       offset_bytes, " is past the end (", size_, " bytes)"));
    }
    if (!direct_) return PreadAll(offset_bytes, buf.data(), buf.size());
    // O_DIRECT wants aligned offsets, lengths and memory: read the aligned
    // cover of the request into the bounce buffer and copy out.
    uint64_t pos = offset_bytes;
    size_t done = 0;
    while (done < buf.size()) {
      const uint64_t lo = pos / kAlign * kAlign;
      const uint64_t want =
          std::min<uint64_t>(buf.size() - done, kBounceBytes - (pos - lo));
      uint64_t hi = (pos + want + kAlign - 1) / kAlign * kAlign;
      hi = std::min(hi, (size_ + kAlign - 1) / kAlign * kAlign);
      if (bounce_ == nullptr &&
          posix_memalign(&bounce_, kAlign, kBounceBytes) != 0) {
        return absl::ResourceExhaustedError("out of memory for read buffer");
      }
      absl::Status st = PreadAll(lo, static_cast<char*>(bounce_), hi - lo,
                                 /*allow_eof=*/true);
      if (!st.ok()) return st;
      std::memcpy(buf.data() + done, static_cast<char*>(bounce_) + (pos - lo),
                  want);
      done += want;
      pos += want;
    }
    return absl::OkStatus();
  }

 private:
  static constexpr uint64_t kBounceBytes = 1 << 20;

  absl::Status PreadAll(uint64_t off, char* p, size_t len,
                        bool allow_eof = false) {
    size_t done = 0;
    while (done < len) {
      const ssize_t n =
          ::pread(fd_, p + done, len - done, static_cast<off_t>(off + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return common::ErrnoStatus(
            errno, absl::StrCat("read ", path_, " at ", off + done));
      }
      if (n == 0) {
        if (allow_eof) return absl::OkStatus();
        return absl::OutOfRangeError(
            absl::StrCat(path_, ": unexpected end at ", off + done));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  std::string path_;
  int fd_;
  uint64_t size_;
  bool direct_;
  void* bounce_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockReader>> OpenBlockReader(
    const std::string& path) {
  bool direct = true;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  if (fd < 0 && errno == EINVAL) {
    // tmpfs and some file systems refuse O_DIRECT; files there have no
    // kernel writer we could race with, so buffered reads are fine.
    direct = false;
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return common::ErrnoStatus(err, absl::StrCat("stat ", path));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      const int err = errno;
      ::close(fd);
      return common::ErrnoStatus(err, absl::StrCat("BLKGETSIZE64 ", path));
    }
  } else if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is neither a block device nor a regular file"));
  }
  return std::unique_ptr<BlockReader>(
      new LinuxBlockReader(path, fd, size, direct));
}

}  // namespace cbtd::cbt
