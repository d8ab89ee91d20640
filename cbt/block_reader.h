// Read-only random access to a block device or file: what the cow-table
// and hash methods need from the OS. The Linux implementation (in
// linux_block_reader.cc) opens with O_DIRECT where the file system allows
// it, so metadata written by the kernel (a COW exception table) is read
// from the device, never from a stale page cache.
//
// Thread-safety: one reader per thread.
#ifndef CBTD_CBT_BLOCK_READER_H_
#define CBTD_CBT_BLOCK_READER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::cbt {

class BlockReader {
 public:
  virtual ~BlockReader() = default;
  // Path or description, for messages.
  virtual const std::string& name() const = 0;
  virtual uint64_t SizeBytes() const = 0;
  // Fills `buf` from `offset_bytes`. A read past the end is OUT_OF_RANGE
  // (never a short read); I/O errors name the device.
  virtual absl::Status ReadAt(uint64_t offset_bytes, std::span<char> buf) = 0;
};

// Opens a block device or regular file read-only. NOT_FOUND if missing.
absl::StatusOr<std::unique_ptr<BlockReader>> OpenBlockReader(
    const std::string& path);

// An in-memory reader: fixtures and unit tests.
class StringBlockReader : public BlockReader {
 public:
  StringBlockReader(std::string name, std::string data)
      : name_(std::move(name)), data_(std::move(data)) {}
  const std::string& name() const override { return name_; }
  uint64_t SizeBytes() const override { return data_.size(); }
  absl::Status ReadAt(uint64_t offset_bytes, std::span<char> buf) override;

 private:
  std::string name_;
  std::string data_;
};

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_BLOCK_READER_H_
