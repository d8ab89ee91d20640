// Subcommand dispatch shared by cbtctl and cbt-receiver: `PROG COMMAND ...`,
// and the option parsing their subcommands share.
#ifndef CBTD_COMMON_CLI_H_
#define CBTD_COMMON_CLI_H_

#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace boost::program_options {
class options_description;
class positional_options_description;
class variables_map;
}  // namespace boost::program_options

namespace cbtd::common {

// Exit codes every cbtd program uses (docs/operations.md lists them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed
inline constexpr int kExitUsage = 2;    // bad command line or config
inline constexpr int kExitRefused = 3;  // input refused; nothing was changed
inline constexpr int kExitDamaged = 4;  // verify found damaged data
inline constexpr int kExitUnavailable = 5;  // a peer or the daemon is down
inline constexpr int kExitNotFound = 6;     // no such host, volume or version

// The exit code for the outcome of an operation on stored data (a vault,
// a key file): NOT_FOUND 6, DATA_LOSS 4, UNAVAILABLE 5, a refusal of the
// input or state (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS,
// OUT_OF_RANGE, PERMISSION_DENIED) 3, anything else 1.
int ExitCodeForStatus(const absl::Status& status);

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  // args[0] is the subcommand name; returns the process exit code.
  int (*run)(std::span<char*> args);
};

struct Program {
  std::string_view name;         // e.g. "cbtctl"
  std::string_view description;  // one paragraph for --help
  std::span<const Subcommand> commands;
};

// Handles --help / --version / unknown commands and runs the chosen one.
int DispatchSubcommand(const Program& program, int argc, char** argv);

void PrintProgramUsage(const Program& program, std::ostream& os);

// Parses a subcommand's `args` (args[0], its name, stands in for argv[0],
// which Boost skips) against `desc` and `positional` (nullptr: none) into
// `vm` with Boost.Program_options. po::notify (bound variables, required
// options) runs unless --help ("help") was given, so help needs no other
// option. Returns the parse error's text, or nullopt; the caller prints it
// in its own words with its usage.
std::optional<std::string> ParseOptions(
    std::span<char*> args,
    const boost::program_options::options_description& desc,
    const boost::program_options::positional_options_description* positional,
    boost::program_options::variables_map& vm);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_CLI_H_
