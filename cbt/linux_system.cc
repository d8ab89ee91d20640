#include "cbt/system.h"
#include "common/exec.h"
#include "common/file_lock.h"

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

}  // namespace

std::unique_ptr<CommandRunner> NewLinuxCommandRunner() {
  return std::make_unique<LinuxCommandRunner>();
}

absl::StatusOr<std::unique_ptr<ScopedLock>> LockFile(const std::string& path) {
  absl::StatusOr<common::FileLock> lock = common::FileLock::Acquire(path, {});
  if (!lock.ok()) return lock.status();
  return std::make_unique<common::FileLock>(*std::move(lock));
}

}  // namespace cbtd::cbt
