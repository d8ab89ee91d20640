#include "cbtctl/commands.h"

#include <iostream>

namespace cbtd::cbtctl {
namespace {

// One line per command; the implementation is in cbtctl_<name>.cc.
constexpr common::Subcommand kCommands[] = {
    {"send", "write a backup stream of a snapshot or image to stdout",
     RunSendCommand},
    {"version", "print the version", RunVersionCommand},
    {"snapshot", "create, list and remove snapshots directly (no daemon)",
     RunSnapshotCommand},
    {"changes", "print a volume's changed set against a base (debug)",
     RunChangesCommand},
    {"era-stack", "create, assemble, remove or list dm-era tracking stacks",
     RunEraStackCommand},
    {"key", "create, show, export or import the key that seals backups",
     RunKeyCommand},
    {"status", "show what cbtd is doing", RunStatusCommand},
    {"volumes", "list volumes and their tracking state", RunVolumesCommand},
    {"backup", "back up a volume or group now", RunBackupCommand},
    {"runs", "show the run history and progress", RunRunsCommand},
    {"cancel", "cancel a queued or running backup", RunCancelCommand},
    {"versions", "list a volume's versions at the receiver",
     RunVersionsCommand},
    {"restore", "restore a version from the receiver to a device or file",
     RunRestoreCommand},
    {"verify", "read a version back from the receiver and check it",
     RunVerifyCommand},
    {"export", "serve a version as an NBD block device, read on demand",
     RunExportCommand},
    {"exports", "list the NBD exports serving now", RunExportsCommand},
};

}  // namespace

std::span<const common::Subcommand> CbtctlCommands() { return kCommands; }

int RunVersionCommand(std::span<char*>) {
  std::cout << "cbtctl " << CBTD_VERSION << "\n";
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
