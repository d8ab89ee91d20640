#include "common/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::common {

absl::StatusOr<FileLock> FileLock::Acquire(const std::string& path,
                                           const Options& options) {
  UniqueFd fd(
      ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, options.create_mode));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  const int op = (options.mode == Mode::kShared ? LOCK_SH : LOCK_EX) |
                 (options.wait ? 0 : LOCK_NB);
  while (::flock(fd.get(), op) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      return absl::UnavailableError(
          absl::StrCat("lock ", path, " is held by another process"));
    }
    return ErrnoStatus(errno, absl::StrCat("flock ", path));
  }
  return FileLock(path, std::move(fd));
}

}  // namespace cbtd::common
