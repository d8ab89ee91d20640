// Subcommand dispatch shared by cbtctl and cbt-receiver: `PROG COMMAND ...`.
#ifndef CBTD_COMMON_CLI_H_
#define CBTD_COMMON_CLI_H_

#include <ostream>
#include <span>
#include <string_view>

namespace cbtd::common {

// Exit codes every cbtd program uses (docs/operations.md lists them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed
inline constexpr int kExitUsage = 2;    // bad command line or config
inline constexpr int kExitRefused = 3;  // input refused; nothing was changed
inline constexpr int kExitDamaged = 4;  // verify found damaged data
inline constexpr int kExitUnavailable = 5;  // a peer or the daemon is down
inline constexpr int kExitNotFound = 6;     // no such host, volume or version

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

}  // namespace cbtd::common

#endif  // CBTD_COMMON_CLI_H_
