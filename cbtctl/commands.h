// cbtctl's subcommands. Each lives in agent/cbtctl_<name>.cc and is listed
// in cbtctl_commands.cc; each takes the arguments after `cbtctl` (args[0] is
// the command name) and returns an exit code from common/cli.h.
#ifndef CBTD_CBTCTL_COMMANDS_H_
#define CBTD_CBTCTL_COMMANDS_H_

#include <span>

#include "common/cli.h"

namespace cbtd::cbtctl {

std::span<const common::Subcommand> CbtctlCommands();

int RunVersionCommand(std::span<char*> args);
int RunSendCommand(std::span<char*> args);
int RunSnapshotCommand(std::span<char*> args);
int RunChangesCommand(std::span<char*> args);   // changes.cc
int RunEraStackCommand(std::span<char*> args);  // era_stack.cc
int RunKeyCommand(std::span<char*> args);       // key.cc
int RunExportCommand(std::span<char*> args);    // export.cc
int RunExportsCommand(std::span<char*> args);   // export.cc

// Daemon-facing commands (agent/cbtctl_<name>.cc), over the control socket.
int RunStatusCommand(std::span<char*> args);
int RunVolumesCommand(std::span<char*> args);
int RunBackupCommand(std::span<char*> args);
int RunRunsCommand(std::span<char*> args);
int RunCancelCommand(std::span<char*> args);
int RunVersionsCommand(std::span<char*> args);
int RunRestoreCommand(std::span<char*> args);
int RunVerifyCommand(std::span<char*> args);

}  // namespace cbtd::cbtctl

#endif  // CBTD_CBTCTL_COMMANDS_H_
