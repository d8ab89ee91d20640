// BlockDevice: what the stream producer reads a volume from (a snapshot LV,
// a file). The Linux implementation (linux_block_device.cc) reads with
// O_DIRECT where the kernel allows it, so a backup does not evict the page
// cache; tests use MemoryBlockDevice.
//
// Thread-safety: ReadAt may be called from several threads at once.
#ifndef CBTD_TRANSPORT_STREAM_SOURCE_H_
#define CBTD_TRANSPORT_STREAM_SOURCE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cbt/extent_set.h"

namespace cbtd::transport {

// Overlapped reads (libaio on Linux): many reads in flight from one thread.
// Not thread-safe: one thread submits and reaps. Destroying it waits for
// the reads still in flight.
class AsyncReader {
 public:
  struct Completion {
    uint64_t tag = 0;
    absl::Status status;
  };
  virtual ~AsyncReader() = default;
  // Starts reading [offset, offset + buf.size()) into `buf` (aligned to the
  // device's Alignment(); may run past the end like ReadAt). At most
  // `depth` reads may be in flight.
  virtual absl::Status Submit(uint64_t tag, uint64_t offset_bytes,
                              std::span<uint8_t> buf) = 0;
  // Waits until at least `min` reads completed (0: does not wait) and
  // returns every completion available.
  virtual absl::StatusOr<std::vector<Completion>> Reap(size_t min) = 0;
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual uint64_t SizeBytes() const = 0;
  // Fills `buf` with the bytes at [offset, offset + buf.size()), which lies
  // within SizeBytes(). Errors name the device.
  virtual absl::Status ReadAt(uint64_t offset_bytes,
                              std::span<uint8_t> buf) = 0;
  // Alignment ReadAt's buffer, offset and length should have for direct
  // I/O (1 when any will do). Reads of a short last chunk may run past
  // SizeBytes() up to this alignment.
  virtual size_t Alignment() const { return 1; }
  // Overlapped reads with up to `depth` in flight, or nullptr when the
  // device has none (the producer then reads with ReadAt from its workers).
  virtual std::unique_ptr<AsyncReader> NewAsyncReader(size_t depth) {
    return nullptr;
  }
};

// Opens a block device or regular file read-only, with O_DIRECT when the
// filesystem supports it. Errors name the path.
absl::StatusOr<std::unique_ptr<BlockDevice>> OpenBlockDevice(
    const std::string& path);

class MemoryBlockDevice : public BlockDevice {
 public:
  explicit MemoryBlockDevice(std::string data) : data_(std::move(data)) {}
  uint64_t SizeBytes() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset_bytes, std::span<uint8_t> buf) override;
  std::string& data() { return data_; }

 private:
  std::string data_;
};

// Parses a changed-extent list: one extent per line, "OFFSET LENGTH" in
// bytes (decimal, or hex with 0x), blank lines and '#' comments ignored.
// `what` names the file in errors (INVALID_ARGUMENT with the line number).
absl::StatusOr<cbt::ExtentSet> ParseExtentList(std::string_view text,
                                               std::string_view what);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_STREAM_SOURCE_H_
