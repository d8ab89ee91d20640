// The narrow OS interfaces the tracking methods need besides BlockReader and
// DeviceMapper: running a tool (thin_delta, era_invalidate, lvs) and taking
// an exclusive lock. Real implementations are in linux_system.cc; unit tests
// use fakes that script the tools' answers and record the call order.
#ifndef CBTD_CBT_SYSTEM_H_
#define CBTD_CBT_SYSTEM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/file_lock.h"

namespace cbtd::cbt {

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv and returns its stdout. A non-zero exit is an error whose
  // message holds the command line and its stderr.
  virtual absl::StatusOr<std::string> Run(
      const std::vector<std::string>& argv) = 0;
};

// Runs through common::RunCommandOk with a 10-minute timeout.
std::unique_ptr<CommandRunner> NewLinuxCommandRunner();

// An exclusive flock(2) on a file, released when destroyed (also when the
// process dies, which is what makes stale-reservation detection safe).
using ScopedLock = common::FileLock;

// Creates the file (and not its directory) if needed and blocks until the
// lock is held. Errors name the path.
absl::StatusOr<std::unique_ptr<ScopedLock>> LockFile(const std::string& path);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_SYSTEM_H_
