#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "cbt/era_stack.h"
#include "common/fs.h"
#include "common/unique_fd.h"

namespace cbtd::cbt {

absl::Status ZeroSuperblock(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  // dm-era formats fresh metadata only when the superblock is all zeros.
  char zeros[4096] = {};
  const bool ok = ::pwrite(fd.get(), zeros, sizeof(zeros), 0) ==
                      static_cast<ssize_t>(sizeof(zeros)) &&
                  ::fsync(fd.get()) == 0;
  if (!ok) return common::ErrnoStatus(errno, absl::StrCat("zero ", path));
  return absl::OkStatus();
}

absl::StatusOr<bool> SuperblockIsBlank(const std::string& path) {
  common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  char block[4096];
  const ssize_t n = ::pread(fd.get(), block, sizeof(block), 0);
  if (n < 0) return common::ErrnoStatus(errno, absl::StrCat("read ", path));
  if (n != static_cast<ssize_t>(sizeof(block))) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is smaller than one metadata block"));
  }
  for (char c : block) {
    if (c != 0) return false;
  }
  return true;
}

}  // namespace cbtd::cbt
