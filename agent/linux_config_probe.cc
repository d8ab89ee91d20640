#include "agent/linux_config_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::agent {

absl::Status LinuxConfigProbe::CheckVolumePath(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is neither a block device nor a regular file"));
  }
  return absl::OkStatus();
}

absl::Status LinuxConfigProbe::CheckReadable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  ::close(fd);
  return absl::OkStatus();
}

absl::Status LinuxConfigProbe::CheckReachable(const std::string&) {
  return absl::OkStatus();
}

}  // namespace cbtd::agent
