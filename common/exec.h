// Runs a program (lvm2, thin_delta, dmsetup, hooks) and captures its output.
// The only place in cbtd that forks and execs; everything else calls this.
#ifndef CBTD_COMMON_EXEC_H_
#define CBTD_COMMON_EXEC_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cbtd::common {

struct CommandResult {
  int exit_code = 0;  // exit status, or 128 + signal if it was killed
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr
};

struct CommandOptions {
  // Extra environment entries "NAME=value", added to the current one (or,
  // with clean_env, to kCleanEnvironment's).
  std::vector<std::string> env;
  // Run with a fixed environment and "/" as working directory instead of
  // cbtd's: what an operator's hook sees does not depend on how cbtd was
  // started, and nothing of cbtd's environment leaks into it.
  bool clean_env = false;
  // Kill the process (SIGKILL to its process group) after this long.
  std::optional<std::chrono::milliseconds> timeout;
  // Written to the child's stdin, which is then closed.
  std::string stdin_data;
};

// The environment of a clean_env command (HOME is the effective user's).
inline constexpr const char* kCleanPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Runs argv[0] (looked up in PATH) with the arguments. Returns an error only
// if it could not be started; a non-zero exit is reported in the result.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const CommandOptions& options = {});

// Like RunCommand, but a non-zero exit or timeout becomes an error whose
// message holds the command line and the last line(s) of its stderr.
absl::StatusOr<std::string> RunCommandOk(const std::vector<std::string>& argv,
                                         const CommandOptions& options = {});

// Starts argv[0] (looked up in PATH) as a long-running service in its own
// session, with stdin on /dev/null, stdout and stderr appended to
// `log_path` (created 0600), and `env` ("NAME=value") added to the current
// environment; returns at once with its pid. The caller reaps it if it
// stays the parent (waitpid), or leaves it to init by exiting.
absl::StatusOr<int> SpawnDetached(const std::vector<std::string>& argv,
                                  const std::vector<std::string>& env,
                                  const std::string& log_path);

// "lvs --reportformat json ..." for messages.
std::string CommandLine(const std::vector<std::string>& argv);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_EXEC_H_
