#include "common/unique_fd.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::common {

void UniqueFd::reset(int fd) {
  // Not retried on EINTR: Linux has released the descriptor already, and
  // a retry could close one that another thread just opened.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd < 0 ? -1 : fd;
}

absl::Status UniqueFd::Close(std::string_view what) {
  if (fd_ < 0) return absl::OkStatus();
  const int rc = ::close(release());
  if (rc != 0) {
    return ErrnoStatus(errno, absl::StrCat("close ", std::string(what)));
  }
  return absl::OkStatus();
}

}  // namespace cbtd::common
