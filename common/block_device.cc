#include "common/block_device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::common {

absl::StatusOr<OpenedDevice> OpenBlockDevice(const std::string& path, int flags,
                                             mode_t create_mode) {
  OpenedDevice d;
  d.direct = (flags & O_DIRECT) != 0;
  d.fd.reset(::open(path.c_str(), flags | O_CLOEXEC, create_mode));
  if (!d.fd && errno == EINVAL && d.direct) {
    d.direct = false;
    d.fd.reset(
        ::open(path.c_str(), (flags & ~O_DIRECT) | O_CLOEXEC, create_mode));
  }
  if (!d.fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st {};
  if (::fstat(d.fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (S_ISBLK(st.st_mode)) {
    d.is_block_device = true;
    if (::ioctl(d.fd.get(), BLKGETSIZE64, &d.size_bytes) != 0) {
      return ErrnoStatus(errno, absl::StrCat("BLKGETSIZE64 ", path));
    }
  } else if (S_ISREG(st.st_mode)) {
    d.size_bytes = static_cast<uint64_t>(st.st_size);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is neither a block device nor a regular file"));
  }
  return d;
}

}  // namespace cbtd::common
