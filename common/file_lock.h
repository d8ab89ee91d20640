// FileLock: an flock(2) on a lock file, held while the object lives and
// released when it is destroyed — and by the kernel when the process dies,
// which is what makes stale-holder detection safe (a lock that can be
// taken has no live holder). The cbt methods' reservation lock and the
// vault's store locks are both this.
//
// Thread-safety: like a UniqueFd. flock locks belong to the open file, so
// two FileLocks on the same path exclude each other even inside one
// process.
#ifndef CBTD_COMMON_FILE_LOCK_H_
#define CBTD_COMMON_FILE_LOCK_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace cbtd::common {

class FileLock {
 public:
  enum class Mode { kShared, kExclusive };
  struct Options {
    Mode mode = Mode::kExclusive;
    // false: a lock held elsewhere is UNAVAILABLE
    // ("lock <path> is held by another process") instead of a wait.
    bool wait = true;
    // Permissions of the lock file when it is created.
    mode_t create_mode = 0600;
  };

  // Opens `path`, creating the file (not its directory) if needed, and
  // takes the lock. Errors name the path.
  static absl::StatusOr<FileLock> Acquire(const std::string& path,
                                          const Options& options);

  FileLock(FileLock&&) = default;
  FileLock& operator=(FileLock&&) = default;

  const std::string& path() const { return path_; }

 private:
  FileLock(std::string path, UniqueFd fd)
      : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;  // closing it releases the lock
};

}  // namespace cbtd::common

#endif  // CBTD_COMMON_FILE_LOCK_H_
