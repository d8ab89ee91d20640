// The Linux BlockDevice, and the small pure helpers of stream_source.h.
#include <fcntl.h>
#include <libaio.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "transport/stream_source.h"

namespace cbtd::transport {
namespace {

// libaio over the device's descriptor. With O_DIRECT the reads really
// overlap in the block layer; on a filesystem without O_DIRECT io_submit
// completes them synchronously, which is still correct.
class LinuxAsyncReader : public AsyncReader {
 public:
  LinuxAsyncReader(io_context_t ctx, int fd, std::string path, uint64_t size,
                   size_t depth)
      : ctx_(ctx),
        fd_(fd),
        path_(std::move(path)),
        size_(size),
        iocbs_(depth),
        free_(depth) {
    for (size_t i = 0; i < depth; ++i) free_[i] = &iocbs_[i];
  }
  ~LinuxAsyncReader() override {
    // The kernel may still write into buffers owned by the caller: wait.
    while (in_flight_ > 0) {
      if (!Reap(1).ok()) break;
    }
    io_destroy(ctx_);
  }
  LinuxAsyncReader(const LinuxAsyncReader&) = delete;
  LinuxAsyncReader& operator=(const LinuxAsyncReader&) = delete;

  absl::Status Submit(uint64_t tag, uint64_t offset_bytes,
                      std::span<uint8_t> buf) override {
    if (free_.empty()) {
      return absl::InternalError("async reader: more reads than its depth");
    }
    Slot* slot = free_.back();
    io_prep_pread(&slot->cb, fd_, buf.data(), buf.size(),
                  static_cast<long long>(offset_bytes));
    slot->tag = tag;
    slot->offset = offset_bytes;
    slot->buf = buf;
    slot->cb.data = slot;
    struct iocb* cbs[1] = {&slot->cb};
    for (;;) {
      const int rc = io_submit(ctx_, 1, cbs);
      if (rc == 1) break;
      if (rc == -EINTR || rc == -EAGAIN) continue;
      return common::ErrnoStatus(
          -rc, absl::StrCat("io_submit read at ", offset_bytes, " of ", path_));
    }
    free_.pop_back();
    ++in_flight_;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Completion>> Reap(size_t min) override {
    std::vector<struct io_event> events(iocbs_.size());
    int n;
    do {
      n = io_getevents(ctx_, static_cast<long>(std::min(min, in_flight_)),
                       static_cast<long>(events.size()), events.data(),
                       nullptr);
    } while (n == -EINTR);
    if (n < 0) {
      return common::ErrnoStatus(-n, absl::StrCat("io_getevents ", path_));
    }
    std::vector<Completion> out;
    for (int i = 0; i < n; ++i) {
      Slot* slot = static_cast<Slot*>(events[i].data);
      const long res = static_cast<long>(events[i].res);
      Completion c{slot->tag, absl::OkStatus()};
      if (res < 0) {
        c.status = common::ErrnoStatus(
            static_cast<int>(-res),
            absl::StrCat("read ", slot->buf.size(), " bytes at offset ",
                         slot->offset, " of ", path_));
      } else if (static_cast<size_t>(res) < slot->buf.size() &&
                 slot->offset + static_cast<uint64_t>(res) < size_) {
        // A short read before the end: finish it synchronously.
        const size_t done = static_cast<size_t>(res);
        const ssize_t more =
            ::pread(fd_, slot->buf.data() + done, slot->buf.size() - done,
                    static_cast<off_t>(slot->offset + done));
        if (more <= 0 && slot->offset + done < size_) {
          c.status = absl::DataLossError(absl::StrCat(
              "short read at offset ", slot->offset + done, " of ", path_));
        }
      }
      out.push_back(std::move(c));
      free_.push_back(slot);
      --in_flight_;
    }
    return out;
  }

 private:
  struct Slot {
    struct iocb cb;
    uint64_t tag = 0;
    uint64_t offset = 0;
    std::span<uint8_t> buf;
  };
  io_context_t ctx_;
  int fd_;
  std::string path_;
  uint64_t size_;
  std::vector<Slot> iocbs_;
  std::vector<Slot*> free_;
  size_t in_flight_ = 0;
};

class LinuxBlockDevice : public BlockDevice {
 public:
  LinuxBlockDevice(int fd, std::string path, uint64_t size, bool direct)
      : fd_(fd), path_(std::move(path)), size_(size), direct_(direct) {}
  ~LinuxBlockDevice() override { ::close(fd_); }
  LinuxBlockDevice(const LinuxBlockDevice&) = delete;
  LinuxBlockDevice& operator=(const LinuxBlockDevice&) = delete;

  uint64_t SizeBytes() const override { return size_; }
  size_t Alignment() const override { return direct_ ? 4096 : 1; }

  std::unique_ptr<AsyncReader> NewAsyncReader(size_t depth) override {
    io_context_t ctx = nullptr;
    if (io_setup(static_cast<int>(depth), &ctx) != 0) {
      return nullptr;  // e.g. aio-max-nr reached: fall back to pread
    }
    return std::make_unique<LinuxAsyncReader>(ctx, fd_, path_, size_, depth);
  }

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
