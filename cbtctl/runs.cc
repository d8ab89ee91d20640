// cbtctl runs: the run history, newest first, with live progress.
#include <iostream>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

int RunRunsCommand(std::span<char*> args) {
  po::options_description desc("Options");
  std::string volume;
  int limit = 20;
  bool active = false;
  desc.add_options()("volume", po::value<std::string>(&volume),
                     "only this volume (also the first argument)")(
      "limit,n", po::value<int>(&limit)->default_value(20),
      "show at most this many runs")("active", po::bool_switch(&active),
                                     "only runs queued or in progress");
  po::positional_options_description positional;
  positional.add("volume", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(
          args, "runs [VOLUME] [--limit N] [--active] [--json]", desc,
          positional, vm, opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  control::ListRunsRequest request;
  request.set_volume(volume);
  request.set_limit(limit);
  request.set_active_only(active);
  absl::StatusOr<control::ListRunsResponse> runs = client.ListRuns(request);
  if (!runs.ok()) return ReportError(runs.status());
  if (opts.json) {
    std::cout << ToJson(*runs) << "\n";
    return common::kExitOk;
  }
  for (const control::Run& r : runs->runs()) {
    std::cout << RunRow(r) << "\n";
    if (r.result() == "running" && r.progress_total_bytes() > 0) {
      std::cout << "       " << RenderProgressLine(r, 72) << "\n";
    }
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
