#include "common/block_reader.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cbtd::common {

absl::Status MemoryBlockReader::ReadAt(uint64_t offset_bytes,
                                       std::span<uint8_t> buf) {
  if (offset_bytes > data_.size() || buf.size() > data_.size() - offset_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        name_, ": read of ", buf.size(), " bytes at ", offset_bytes,
        " is past the end (", data_.size(), " bytes)"));
  }
  std::memcpy(buf.data(), data_.data() + offset_bytes, buf.size());
  return absl::OkStatus();
}

}  // namespace cbtd::common
