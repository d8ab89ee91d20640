// The Linux BlockReader: pread (and libaio for overlapped reads) on a
// descriptor from OpenBlockDevice, with O_DIRECT where the file system
// allows it.
#include <fcntl.h>
#include <libaio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/block_device.h"
#include "common/block_reader.h"
#include "common/fs.h"
#include "common/unique_fd.h"

namespace cbtd::common {
namespace {

constexpr uint64_t kDirectAlign = 4096;
// Unaligned reads of a direct descriptor go through a bounce buffer of at
// most this size, one piece at a time.
constexpr uint64_t kBounceBytes = 1 << 20;

uint64_t RoundUp(uint64_t v, uint64_t align) {
  return (v + align - 1) / align * align;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// libaio over the reader's descriptor. With O_DIRECT the reads really
// overlap in the block layer; on a file system without O_DIRECT io_submit
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
      return ErrnoStatus(
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
    if (n < 0) return ErrnoStatus(-n, absl::StrCat("io_getevents ", path_));
    std::vector<Completion> out;
    for (int i = 0; i < n; ++i) {
      Slot* slot = static_cast<Slot*>(events[i].data);
      const long res = static_cast<long>(events[i].res);
      Completion c{slot->tag, absl::OkStatus()};
      if (res < 0) {
        c.status = ErrnoStatus(
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
  int fd_;  // owned by the LinuxBlockReader, which outlives this
  std::string path_;
  uint64_t size_;
  std::vector<Slot> iocbs_;
  std::vector<Slot*> free_;
  size_t in_flight_ = 0;
};

class LinuxBlockReader : public BlockReader {
 public:
  LinuxBlockReader(std::string path, OpenedDevice dev)
      : path_(std::move(path)),
        fd_(std::move(dev.fd)),
        size_(dev.size_bytes),
        direct_(dev.direct) {}

  const std::string& name() const override { return path_; }
  uint64_t SizeBytes() const override { return size_; }
  size_t Alignment() const override { return direct_ ? kDirectAlign : 1; }

  std::unique_ptr<AsyncReader> NewAsyncReader(size_t depth) override {
    io_context_t ctx = nullptr;
    if (io_setup(static_cast<int>(depth), &ctx) != 0) {
      return nullptr;  // e.g. aio-max-nr reached: callers fall back to pread
    }
    return std::make_unique<LinuxAsyncReader>(ctx, fd_.get(), path_, size_,
                                              depth);
  }

  absl::Status ReadAt(uint64_t offset_bytes, std::span<uint8_t> buf) override {
    const uint64_t end = RoundUp(size_, Alignment());
    if (offset_bytes > size_ || buf.size() > end - offset_bytes) {
      return absl::OutOfRangeError(
          absl::StrCat(path_, ": read of ", buf.size(), " bytes at ",
                       offset_bytes, " is past the end (", size_, " bytes)"));
    }
    if (!direct_ || Aligned(offset_bytes, buf)) {
      return PreadAll(offset_bytes, buf.data(), buf.size());
    }
    // O_DIRECT wants aligned offsets, lengths and memory: read the aligned
    // cover of the request into a bounce buffer and copy out.
    const uint64_t bounce_bytes = std::min(
        kBounceBytes,
        RoundUp(offset_bytes % kDirectAlign + buf.size(), kDirectAlign));
    std::unique_ptr<void, FreeDeleter> bounce(
        std::aligned_alloc(kDirectAlign, bounce_bytes));
    if (bounce == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of memory for a read buffer for ", path_));
    }
    auto* b = static_cast<uint8_t*>(bounce.get());
    uint64_t pos = offset_bytes;
    size_t done = 0;
    while (done < buf.size()) {
      const uint64_t lo = pos / kDirectAlign * kDirectAlign;
      const uint64_t want =
          std::min<uint64_t>(buf.size() - done, bounce_bytes - (pos - lo));
      const uint64_t hi = std::min(RoundUp(pos + want, kDirectAlign), end);
      if (absl::Status st = PreadAll(lo, b, hi - lo); !st.ok()) return st;
      std::memcpy(buf.data() + done, b + (pos - lo), want);
      done += want;
      pos += want;
    }
    return absl::OkStatus();
  }

 private:
  static bool Aligned(uint64_t offset, std::span<uint8_t> buf) {
    return offset % kDirectAlign == 0 && buf.size() % kDirectAlign == 0 &&
           reinterpret_cast<uintptr_t>(buf.data()) % kDirectAlign == 0;
  }

  // Reads [off, off + len); the part at or past the end of the volume
  // reads as zeros.
  absl::Status PreadAll(uint64_t off, uint8_t* p, size_t len) {
    size_t done = 0;
    while (done < len) {
      if (off + done >= size_) {
        // Not read: with O_DIRECT a read from an unaligned end would fail.
        std::memset(p + done, 0, len - done);
        return absl::OkStatus();
      }
      const ssize_t n = ::pread(fd_.get(), p + done, len - done,
                                static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return ErrnoStatus(
            errno, absl::StrCat("read ", len, " bytes at offset ", off, " of ",
                                path_));
      }
      if (n == 0) {
        return absl::DataLossError(absl::StrCat(
            path_, " ended at byte ", off + done, " but its size is ", size_,
            "; was it shrunk while being read?"));
      }
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  bool direct_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockReader>> OpenBlockReader(
    const std::string& path) {
  absl::StatusOr<OpenedDevice> dev = OpenBlockDevice(path, O_RDONLY | O_DIRECT);
  if (!dev.ok()) return dev.status();
  return std::make_unique<LinuxBlockReader>(path, *std::move(dev));
}

}  // namespace cbtd::common
