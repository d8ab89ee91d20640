// cbtctl volumes: the configured volumes and their tracking state.
#include <iostream>

#include "absl/strings/str_format.h"
#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

int RunVolumesCommand(std::span<char*> args) {
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(args, "volumes [--json]", opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::ListVolumesResponse> volumes = client.ListVolumes();
  if (!volumes.ok()) return ReportError(volumes.status());
  if (opts.json) {
    std::cout << ToJson(*volumes) << "\n";
    return common::kExitOk;
  }
  std::cout << absl::StrFormat("%-12s %-18s %-8s %-10s %-11s %-14s %-20s %s\n",
                               "VOLUME", "PATH", "GROUP", "METHOD", "TRACKING",
                               "BASE VERSION", "NEXT RUN", "LAST RUN");
  for (const control::Volume& v : volumes->volumes()) {
    const std::string last =
        v.has_last_run()
            ? absl::StrFormat("%d %s", v.last_run().id(), v.last_run().result())
            : "-";
    std::cout << absl::StrFormat(
        "%-12s %-18s %-8s %-10s %-11s %-14s %-20s %s%s\n", v.name(), v.path(),
        v.group().empty() ? "-" : v.group(), v.method(),
        v.tracking_method().empty() ? "none" : v.tracking_method(),
        v.base_version().empty() ? "-" : v.base_version(),
        FormatUnix(v.next_run_unix()), last, v.busy() ? " (busy)" : "");
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
