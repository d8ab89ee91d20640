// The Linux BlockDevice, and the small pure helpers of stream_source.h.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "transport/stream_source.h"

namespace cbtd::transport {
namespace {

class LinuxBlockDevice : public BlockDevice {
 public:
  LinuxBlockDevice(int fd, std::string path, uint64_t size, bool direct)
      : fd_(fd), path_(std::move(path)), size_(size), direct_(direct) {}
  ~LinuxBlockDevice() override { ::close(fd_); }
  LinuxBlockDevice(const LinuxBlockDevice&) = delete;
  LinuxBlockDevice& operator=(const LinuxBlockDevice&) = delete;

  uint64_t SizeBytes() const override { return size_; }
  size_t Alignment() const override { return direct_ ? 4096 : 1; }

  absl::Status ReadAt(uint64_t offset_bytes, std::span<uint8_t> buf) override {
    size_t done = 0;
    while (done < buf.size()) {
      ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done,
                          static_cast<off_t>(offset_bytes + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return common::ErrnoStatus(
            errno, absl::StrCat("read ", buf.size(), " bytes at offset ",
                                offset_bytes, " of ", path_));
      }
      if (n == 0) {
        // Direct reads of the last chunk are rounded up past the end.
        if (offset_bytes + done >= size_) return absl::OkStatus();
        return absl::DataLossError(absl::StrCat(
            path_, " ended at byte ", offset_bytes + done, " but its size is ",
            size_, "; was it shrunk during the backup?"));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
  bool direct_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockDevice>> OpenBlockDevice(
    const std::string& path) {
  bool direct = true;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  if (fd < 0 && errno == EINVAL) {
    // tmpfs and some FUSE filesystems refuse O_DIRECT: read through the
    // page cache instead.
    direct = false;
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return common::ErrnoStatus(err, absl::StrCat("stat ", path));
  }
  uint64_t size = 0;
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int err = errno;
      ::close(fd);
      return common::ErrnoStatus(err, absl::StrCat("BLKGETSIZE64 ", path));
    }
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is neither a block device nor a regular file"));
  }
  return std::unique_ptr<BlockDevice>(
      new LinuxBlockDevice(fd, path, size, direct));
}

absl::Status MemoryBlockDevice::ReadAt(uint64_t offset_bytes,
                                       std::span<uint8_t> buf) {
  if (offset_bytes > data_.size() || buf.size() > data_.size() - offset_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "read of ", buf.size(), " bytes at ", offset_bytes,
        " past the end of a ", data_.size(), "-byte memory device"));
  }
  std::memcpy(buf.data(), data_.data() + offset_bytes, buf.size());
  return absl::OkStatus();
}

absl::StatusOr<cbt::ExtentSet> ParseExtentList(std::string_view text,
                                               std::string_view what) {
  cbt::ExtentSet set;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    uint64_t values[2];
    int got = 0;
    size_t i = 0;
    bool bad = false;
    while (i < line.size()) {
      if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
        ++i;
        continue;
      }
      if (got == 2) {
        bad = true;
        break;
      }
      int base = 10;
      if (line.substr(i, 2) == "0x" || line.substr(i, 2) == "0X") {
        base = 16;
        i += 2;
      }
      auto [ptr, ec] = std::from_chars(
          line.data() + i, line.data() + line.size(), values[got], base);
      if (ec != std::errc() || ptr == line.data() + i) {
        bad = true;
        break;
      }
      i = static_cast<size_t>(ptr - line.data());
      ++got;
    }
    if (got == 0 && !bad) continue;
    if (bad || got != 2 || values[0] + values[1] < values[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), " line ", line_no,
                       ": expected 'OFFSET LENGTH' in bytes, got '",
                       std::string(line), "'"));
    }
    set.Add(values[0], values[1]);
  }
  return set;
}

}  // namespace cbtd::transport
