// cbtctl status: is cbtd up, what is it doing.
#include <iostream>

#include "absl/time/clock.h"
#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

int RunStatusCommand(std::span<char*> args) {
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(args, "status [--json]", opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::GetStatusResponse> status = client.GetStatus();
  if (!status.ok()) return ReportError(status.status());
  control::ListRunsRequest active;
  active.set_active_only(true);
  active.set_limit(100);
  absl::StatusOr<control::ListRunsResponse> runs = client.ListRuns(active);
  if (!runs.ok()) return ReportError(runs.status());
  if (opts.json) {
    std::cout << "{\"status\":" << ToJson(*status)
              << ",\"active_runs\":" << ToJson(*runs) << "}\n";
    return common::kExitOk;
  }
  std::cout << "cbtd " << status->version() << ", running since "
            << FormatUnix(status->started_unix()) << "\n"
            << "config:   " << status->config_path() << "\n"
            << "receiver: "
            << (status->receiver().empty() ? "(none)" : status->receiver())
            << "\n"
            << "volumes:  " << status->volumes() << " in " << status->groups()
            << " group(s)\n"
            << "jobs:     " << status->running_jobs() << " running, "
            << status->queued_jobs() << " queued\n";
  for (const control::Run& r : runs->runs()) {
    std::cout << "  " << RenderProgressLine(r, 76) << "\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
