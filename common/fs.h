// Crash-safe file helpers shared by the vault, the tracking state and the
// agent. Every error names the path and the failed system call.
#ifndef CBTD_COMMON_FS_H_
#define CBTD_COMMON_FS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::common {

// errno -> Status with a message "<what>: <strerror>". ENOENT becomes
// NOT_FOUND, ENOSPC/EDQUOT RESOURCE_EXHAUSTED, EACCES/EPERM
// PERMISSION_DENIED, EAGAIN/EINTR/EBUSY UNAVAILABLE, others INTERNAL.
absl::Status ErrnoStatus(int err, std::string_view what);

// Writes `contents` to `path` so that after a crash the file holds either
// the old or the new contents, never a mix: write a temporary file in the
// same directory, fsync it, rename it over `path`, fsync the directory.
absl::Status AtomicWriteFile(const std::string& path,
                             std::string_view contents);

// fsync on a directory, so a rename or create inside it is durable.
absl::Status FsyncDirectory(const std::string& dir);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Whether two paths name one thing, whatever the names: the same block
// device (major:minor, so /dev/VG/LV, /dev/mapper/VG-LV and /dev/dm-N
// match) or the same file (device and inode). False if either is missing.
bool SameFileOrDevice(const std::string& a, const std::string& b);

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool operator==(const ByteRange&) const = default;
};

// The ranges of a regular file that hold data, ascending (SEEK_DATA /
// SEEK_HOLE); the rest are holes, which read as zeros. A file system that
// cannot tell reports the whole file as data, which is safe. Block devices
// and other non-regular files are INVALID_ARGUMENT: read all of them.
absl::StatusOr<std::vector<ByteRange>> FileDataRanges(const std::string& path);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_FS_H_
