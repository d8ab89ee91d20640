#include "receiver/rados_status.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::receiver {

absl::Status RadosStatus(int rc, const std::string& what) {
  const int err = -rc;
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(absl::StrCat(what, ": no such object"));
    case EEXIST:
      return absl::AlreadyExistsError(
          absl::StrCat(what, ": the object already exists"));
    case ETIMEDOUT:
      return absl::UnavailableError(absl::StrCat(
          what, ": timed out (is the Ceph cluster up and its OSDs in?)"));
    case EFBIG:
    case E2BIG:
      return absl::InvalidArgumentError(absl::StrCat(
          what,
          ": too large for one RADOS object (osd_max_object_size / "
          "osd_max_write_size)"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(
          absl::StrCat(what,
                       ": permission denied (check the Ceph user's osd caps on "
                       "this pool)"));
    default:
      return common::ErrnoStatus(err, what);
  }
}

}  // namespace cbtd::receiver
