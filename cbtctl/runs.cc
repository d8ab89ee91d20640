// cbtctl runs: the run history, newest first, with live progress;
// --follow then prints every change (a new run, a new step, its end, each
// tenth of its progress) as it happens, until interrupted.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

namespace {

// What of a run, once printed, makes the next change worth a line.
std::string FollowKey(const control::Run& r) {
  const uint64_t tenth =
      r.progress_total_bytes() == 0
          ? 0
          : r.progress_done_bytes() * 10 / r.progress_total_bytes();
  return r.result() + "/" + r.step() + "/" + std::to_string(tenth);
}

// Polls the daemon every second and prints what changed since `shown`
// (already printed), oldest first. Returns when the daemon goes away (its
// error) or never.
int FollowRuns(control::ControlClient& client, control::ListRunsRequest request,
               const control::ListRunsResponse& shown, bool json) {
  request.set_limit(std::max<int>(request.limit(), 50));
  std::map<int64_t, std::string> printed;
  for (const control::Run& r : shown.runs()) printed[r.id()] = FollowKey(r);
  while (true) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    absl::StatusOr<control::ListRunsResponse> runs = client.ListRuns(request);
    if (!runs.ok()) return ReportError(runs.status());
    for (auto it = runs->runs().rbegin(); it != runs->runs().rend(); ++it) {
      const control::Run& r = *it;
      std::string key = FollowKey(r);
      auto [slot, fresh] = printed.try_emplace(r.id(), "");
      if (!fresh && slot->second == key) continue;
      slot->second = std::move(key);
      if (json) {
        std::cout << ToJson(r) << std::endl;
      } else if (r.result() == "running" && r.progress_total_bytes() > 0) {
        std::cout << RenderProgressLine(r, 72) << std::endl;
      } else {
        std::cout << RunRow(r) << std::endl;
      }
    }
  }
}

}  // namespace

int RunRunsCommand(std::span<char*> args) {
  po::options_description desc("Options");
  std::string volume;
  int limit = 20;
  bool active = false;
  bool follow = false;
  desc.add_options()("follow,f", po::bool_switch(&follow),
                     "then print each change as it happens (new runs, "
                     "steps, progress, ends) until interrupted")(
      "volume", po::value<std::string>(&volume),
      "only this volume (also the first argument)")(
      "limit,n", po::value<int>(&limit)->default_value(20),
      "show at most this many runs")("active", po::bool_switch(&active),
                                     "only runs queued or in progress");
  po::positional_options_description positional;
  positional.add("volume", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(
          args, "runs [VOLUME] [--limit N] [--active] [--follow] [--json]",
          desc, positional, vm, opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  control::ListRunsRequest request;
  request.set_volume(volume);
  request.set_limit(limit);
  request.set_active_only(active);
  absl::StatusOr<control::ListRunsResponse> runs = client.ListRuns(request);
  if (!runs.ok()) return ReportError(runs.status());
  if (follow) {
    // The history as usual first (as JSON lines with --json), then changes.
    for (auto it = runs->runs().rbegin(); it != runs->runs().rend(); ++it) {
      std::cout << (opts.json ? ToJson(*it) : RunRow(*it)) << "\n";
    }
    return FollowRuns(client, request, *runs, opts.json);
  }
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
