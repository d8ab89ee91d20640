#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "cbt/system.h"
#include "common/exec.h"
#include "common/fs.h"

namespace cbtd::cbt {
namespace {

class LinuxCommandRunner : public CommandRunner {
 public:
  absl::StatusOr<std::string> Run(
      const std::vector<std::string>& argv) override {
    common::CommandOptions opts;
    opts.timeout = std::chrono::minutes(10);
    return common::RunCommandOk(argv, opts);
  }
};

class FlockLock : public ScopedLock {
 public:
  explicit FlockLock(int fd) : fd_(fd) {}
  ~FlockLock() override { ::close(fd_); }  // closing drops the flock
  FlockLock(const FlockLock&) = delete;
  FlockLock& operator=(const FlockLock&) = delete;

 private:
  int fd_;
};

}  // namespace

std::unique_ptr<CommandRunner> NewLinuxCommandRunner() {
  return std::make_unique<LinuxCommandRunner>();
}

absl::StatusOr<std::unique_ptr<ScopedLock>> LockFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    ::close(fd);
    return common::ErrnoStatus(err, absl::StrCat("flock ", path));
  }
  return std::unique_ptr<ScopedLock>(new FlockLock(fd));
}

}  // namespace cbtd::cbt
