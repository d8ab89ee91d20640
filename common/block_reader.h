// BlockReader: read-only random access to a volume — what the tracking
// methods (hash, cow-table) and the stream producer read from. The Linux
// implementation (OpenBlockReader, linux_block_reader.cc) opens with
// O_DIRECT where the file system allows it, so metadata written by the
// kernel (a COW exception table) is read from the device rather than a
// stale page cache, and a backup does not evict the page cache; it offers
// overlapped reads through libaio. Tests use MemoryBlockReader.
//
// Thread-safety: ReadAt may be called from several threads at once; an
// AsyncReader belongs to one thread.
#ifndef CBTD_COMMON_BLOCK_READER_H_
#define CBTD_COMMON_BLOCK_READER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::common {

// Overlapped reads (libaio on Linux): many reads in flight from one
// thread. Destroying it waits for the reads still in flight.
class AsyncReader {
 public:
  struct Completion {
    uint64_t tag = 0;
    absl::Status status;
  };
  virtual ~AsyncReader() = default;
  // Starts reading [offset, offset + buf.size()) into `buf` (aligned to the
  // reader's Alignment(); may run past the end like ReadAt). At most
  // `depth` reads may be in flight.
  virtual absl::Status Submit(uint64_t tag, uint64_t offset_bytes,
                              std::span<uint8_t> buf) = 0;
  // Waits until at least `min` reads completed (0: does not wait) and
  // returns every completion available.
  virtual absl::StatusOr<std::vector<Completion>> Reap(size_t min) = 0;
};

class BlockReader {
 public:
  virtual ~BlockReader() = default;
  // Path or description, for messages.
  virtual const std::string& name() const = 0;
  virtual uint64_t SizeBytes() const = 0;
  // Fills `buf` with the bytes at [offset, offset + buf.size()). A read
  // past SizeBytes() is OUT_OF_RANGE, except that it may run on up to the
  // next multiple of Alignment() (so an aligned read of a short last chunk
  // works); those bytes read as zeros. Any offset, length and buffer
  // address work; aligned ones avoid a copy. Errors name the device.
  virtual absl::Status ReadAt(uint64_t offset_bytes,
                              std::span<uint8_t> buf) = 0;
  // The alignment of buffer, offset and length that direct I/O wants (1
  // when any will do).
  virtual size_t Alignment() const { return 1; }
  // Overlapped reads with up to `depth` in flight, or nullptr when the
  // reader has none (callers then use ReadAt, e.g. from worker threads).
  virtual std::unique_ptr<AsyncReader> NewAsyncReader(size_t depth) {
    return nullptr;
  }
};

// Opens a block device or regular file read-only (see OpenBlockDevice).
// NOT_FOUND if missing; errors name the path.
absl::StatusOr<std::unique_ptr<BlockReader>> OpenBlockReader(
    const std::string& path);

// A volume in memory: fixtures and unit tests.
class MemoryBlockReader : public BlockReader {
 public:
  explicit MemoryBlockReader(std::string data)
      : MemoryBlockReader("memory", std::move(data)) {}
  MemoryBlockReader(std::string name, std::string data)
      : name_(std::move(name)), data_(std::move(data)) {}
  const std::string& name() const override { return name_; }
  uint64_t SizeBytes() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset_bytes, std::span<uint8_t> buf) override;

 private:
  std::string name_;
  std::string data_;
};

}  // namespace cbtd::common

#endif  // CBTD_COMMON_BLOCK_READER_H_
