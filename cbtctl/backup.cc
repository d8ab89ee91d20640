// cbtctl backup TARGET: back up a volume or group now, or take a
// consistency point for a hypervisor.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "common/fs.h"
#include "control/control_client.h"
#include "nlohmann/json.hpp"

namespace cbtd::cbtctl {
namespace {

namespace po = boost::program_options;

void PrintSnapshots(const control::ConsistencyPointResponse& r) {
  for (const control::Snapshot& s : r.snapshots()) {
    std::cout << s.volume() << "\t" << s.name() << "\t" << s.device_path()
              << "\n";
  }
}

// Polls until every run in `ids` has finished, drawing progress on a
// terminal. Returns the finished runs.
absl::StatusOr<std::vector<control::Run>> WaitForRuns(
    control::ControlClient& client, const std::vector<int64_t>& ids,
    bool draw) {
  const std::set<int64_t> wanted(ids.begin(), ids.end());
  int drawn_lines = 0;
  while (true) {
    control::ListRunsRequest request;
    request.set_limit(200);
    absl::StatusOr<control::ListRunsResponse> runs = client.ListRuns(request);
    if (!runs.ok()) return runs.status();
    std::vector<control::Run> mine;
    bool all_done = true;
    for (const control::Run& r : runs->runs()) {
      if (!wanted.contains(r.id())) continue;
      mine.push_back(r);
      all_done = all_done && r.result() != "running";
    }
    if (draw) {
      // Redraw in place: move up over the previous frame.
      for (int i = 0; i < drawn_lines; ++i) std::cerr << "\x1b[1A\x1b[2K";
      for (auto it = mine.rbegin(); it != mine.rend(); ++it) {
        std::cerr << RenderProgressLine(*it, 79) << "\n";
      }
      drawn_lines = static_cast<int>(mine.size());
    }
    if (all_done && mine.size() == wanted.size()) return mine;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// "VOLUME=FILE": FILE holds a list in the changes_file format
// (docs/cbt.md): {"generation", "next_generation", "extents": [[off, len]]}.
absl::StatusOr<control::ChangeList> ReadChangeList(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--changes takes VOLUME=FILE, not '", spec, "'"));
  }
  const std::string file = spec.substr(eq + 1);
  absl::StatusOr<std::string> text = common::ReadFile(file);
  if (!text.ok()) return text.status();
  const nlohmann::json j =
      nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  const auto bad = [&file](const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": ", what,
                     " (expected {\"generation\": G, \"next_generation\": N, "
                     "\"extents\": [[offset, length], ...]})"));
  };
  if (!j.is_object() || !j.contains("generation") ||
      !j["generation"].is_string() || !j.contains("extents") ||
      !j["extents"].is_array()) {
    return bad("not a change list");
  }
  control::ChangeList list;
  list.set_volume(spec.substr(0, eq));
  list.set_generation(j["generation"].get<std::string>());
  if (j.contains("next_generation") && j["next_generation"].is_string()) {
    list.set_next_generation(j["next_generation"].get<std::string>());
  }
  for (const nlohmann::json& e : j["extents"]) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_unsigned() ||
        !e[1].is_number_unsigned()) {
      return bad("an extent is not [offset, length]");
    }
    control::ByteRange* r = list.add_extents();
    r->set_offset(e[0].get<uint64_t>());
    r->set_length(e[1].get<uint64_t>());
  }
  return list;
}

}  // namespace

int RunBackupCommand(std::span<char*> args) {
  po::options_description desc("Options");
  std::string target;
  bool full = false;
  bool wait = false;
  bool point = false;
  bool snapshot_only = false;
  std::vector<std::string> change_specs;
  desc.add_options()("target", po::value<std::string>(&target)->required(),
                     "volume or group (first argument)")(
      "full", po::bool_switch(&full),
      "read the whole volume instead of the changed blocks")(
      "wait", po::bool_switch(&wait),
      "wait for the backup to finish, with progress on a terminal")(
      "point", po::bool_switch(&point),
      "return as soon as the consistency point is taken (the hypervisor "
      "trigger: the guest may resume), printing the snapshots")(
      "snapshot-only", po::bool_switch(&snapshot_only),
      "take the consistency point and keep its snapshots, without a backup; "
      "prints them (you remove them when done)")(
      "changes", po::value<std::vector<std::string>>(&change_specs),
      "VOLUME=FILE: the changes since the last run for a member with method "
      "= external, in the changes_file format (repeatable); used instead of "
      "its changes_file");
  po::positional_options_description positional;
  positional.add("target", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(
          args,
          "backup TARGET [--full] [--wait] [--point | --snapshot-only] "
          "[--changes VOLUME=FILE]... [--json]",
          desc, positional, vm, opts)) {
    return *exit;
  }
  if (point && snapshot_only) {
    std::cerr << "cbtctl backup: --point and --snapshot-only exclude each "
                 "other\n";
    return common::kExitUsage;
  }
  std::vector<control::ChangeList> lists;
  for (const std::string& spec : change_specs) {
    absl::StatusOr<control::ChangeList> l = ReadChangeList(spec);
    if (!l.ok()) {
      std::cerr << "cbtctl backup: " << l.status().message() << "\n";
      return common::kExitUsage;
    }
    lists.push_back(*std::move(l));
  }
  control::ControlClient client(opts.socket_path);
  std::vector<int64_t> ids;
  if (point || snapshot_only) {
    control::ConsistencyPointRequest request;
    request.set_target(target);
    request.set_backup(point);
    request.set_full(full);
    for (const control::ChangeList& l : lists) *request.add_changes() = l;
    absl::StatusOr<control::ConsistencyPointResponse> r =
        client.ConsistencyPoint(request);
    if (!r.ok()) return ReportError(r.status());
    if (opts.json && !wait) {
      std::cout << ToJson(*r) << "\n";
    } else if (!opts.json) {
      PrintSnapshots(*r);
    }
    ids.assign(r->run_ids().begin(), r->run_ids().end());
  } else {
    control::BackupNowRequest request;
    request.set_target(target);
    request.set_full(full);
    for (const control::ChangeList& l : lists) *request.add_changes() = l;
    absl::StatusOr<control::BackupNowResponse> r = client.BackupNow(request);
    if (!r.ok()) return ReportError(r.status());
    ids.assign(r->run_ids().begin(), r->run_ids().end());
    if (opts.json && !wait) {
      std::cout << ToJson(*r) << "\n";
    } else if (!opts.json) {
      for (int64_t id : ids) std::cout << "run " << id << " queued\n";
    }
  }
  if (!wait || ids.empty()) return common::kExitOk;

  absl::StatusOr<std::vector<control::Run>> runs =
      WaitForRuns(client, ids, !opts.json && isatty(STDERR_FILENO) == 1);
  if (!runs.ok()) return ReportError(runs.status());
  int exit = common::kExitOk;
  control::ListRunsResponse json;
  for (const control::Run& r : *runs) {
    if (r.result() != "succeeded") exit = common::kExitFailure;
    if (opts.json) {
      *json.add_runs() = r;
    } else {
      std::cout << RunRow(r) << "\n";
    }
  }
  if (opts.json) std::cout << ToJson(json) << "\n";
  return exit;
}

}  // namespace cbtd::cbtctl
