// What cbtctl's daemon-facing commands (status, volumes, backup, runs,
// cancel) share: option parsing, output formatting, exit codes.
#ifndef CBTD_CBTCTL_DAEMON_H_
#define CBTD_CBTCTL_DAEMON_H_

#include <boost/program_options.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "control/proto/control.pb.h"

namespace cbtd::cbtctl {

// Options every daemon command takes: --socket, --json, --help.
struct DaemonOptions {
  std::string socket_path;
  bool json = false;
};

// Parses `args` (args[0] is the command) against `desc` plus the common
// options. Returns an exit code when the command should stop now (help
// shown, or a usage error printed), nullopt to go on.
std::optional<int> ParseDaemonCommand(
    std::span<char*> args, const std::string& usage,
    boost::program_options::options_description& desc,
    const boost::program_options::positional_options_description& positional,
    boost::program_options::variables_map& vm, DaemonOptions& common);
// The same for a command that takes only the common options.
std::optional<int> ParseDaemonCommand(std::span<char*> args,
                                      const std::string& usage,
                                      DaemonOptions& common);

// Prints "cbtctl: <message>" to stderr and maps the code to an exit code
// from common/cli.h: INVALID_ARGUMENT -> usage, NOT_FOUND /
// FAILED_PRECONDITION / PERMISSION_DENIED -> refused, UNAVAILABLE ->
// unavailable, others -> failure.
int ReportError(const absl::Status& status);
int ExitCodeFor(const absl::Status& status);

// The same for versions / restore / verify, where NOT_FOUND is an unknown
// host, volume or version at the receiver: exit 6 (not found), as
// cbt-receiver says it, never "refused" nor "damaged".
int ReportVaultError(const absl::Status& status);
int VaultExitCodeFor(const absl::Status& status);

// "1.5 GiB", "512 B".
std::string HumanBytes(uint64_t bytes);
// "2026-11-21 22:50:03Z", or "-" for 0.
std::string FormatUnix(int64_t unix_seconds);
// One line for a run in progress: "run 12 db send [#####.....] 48% 1.2 GiB
// / 2.5 GiB", sized to `width` columns.
std::string RenderProgressLine(const control::Run& run, int width,
                               absl::Time now = absl::Now());
// One row of `cbtctl runs` (no trailing newline).
std::string RunRow(const control::Run& run);
// The JSON object for a run, volume, ... (stable field names: the proto's).
std::string ToJson(const google::protobuf::Message& message);

}  // namespace cbtd::cbtctl

#endif  // CBTD_CBTCTL_DAEMON_H_
