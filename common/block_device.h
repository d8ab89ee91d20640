// Opening a volume: a block device or a regular file (an image, a test
// fixture). The readers (common/block_reader.h), the restore target and
// the snapshot host's size query open through here, so the O_DIRECT
// fallback and the size rules live in one place.
#ifndef CBTD_COMMON_BLOCK_DEVICE_H_
#define CBTD_COMMON_BLOCK_DEVICE_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace cbtd::common {

struct OpenedDevice {
  UniqueFd fd;
  uint64_t size_bytes = 0;  // BLKGETSIZE64, or the regular file's length
  bool direct = false;      // opened with O_DIRECT
  bool is_block_device = false;
};

// Opens `path` with open(2) `flags` (O_CLOEXEC is added; `create_mode`
// applies with O_CREAT) and reads its size. When `flags` holds O_DIRECT
// and the file system refuses it (EINVAL: tmpfs before Linux 6.6, procfs,
// some FUSE file systems), opens again without it; such files have no
// kernel writer to race with and a page cache to evict is no concern, so
// buffered I/O is fine there. `direct` tells which happened. A path that
// is neither a block device nor a regular file is INVALID_ARGUMENT; a
// missing one NOT_FOUND. Every error names the path. (O_DIRECT together
// with O_CREAT | O_EXCL is not meant: a refused first open may have
// created the file already.)
absl::StatusOr<OpenedDevice> OpenBlockDevice(const std::string& path, int flags,
                                             mode_t create_mode = 0640);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_BLOCK_DEVICE_H_
