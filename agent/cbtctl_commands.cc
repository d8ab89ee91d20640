#include "agent/cbtctl_commands.h"

#include <iostream>

namespace cbtd::agent {
namespace {

// One line per command; the implementation is in cbtctl_<name>.cc.
constexpr common::Subcommand kCommands[] = {
    {"version", "print the version", RunVersionCommand},
    {"status", "show what cbtd is doing", RunStatusCommand},
    {"volumes", "list volumes and their tracking state", RunVolumesCommand},
    {"backup", "back up a volume or group now", RunBackupCommand},
    {"runs", "show the run history and progress", RunRunsCommand},
    {"cancel", "cancel a queued or running backup", RunCancelCommand},
};

}  // namespace

std::span<const common::Subcommand> CbtctlCommands() { return kCommands; }

int RunVersionCommand(std::span<char*>) {
  std::cout << "cbtctl " << CBTD_VERSION << "\n";
  return common::kExitOk;
}

}  // namespace cbtd::agent
