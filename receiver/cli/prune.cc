// cbt-receiver prune (retention) and gc (unreferenced chunks).
#include <iostream>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/gc.h"
#include "receiver/retention.h"

namespace cbtd::receiver::cli {

int RunPrune(std::span<char*> args) {
  po::options_description desc("Options");
  RetentionPolicy p;
  desc.add_options()("host", po::value<std::string>(), "source host")(
      "volume", po::value<std::string>(), "volume id (default: every volume)")(
      "keep-last", po::value<int>(&p.keep_last)->default_value(0), "")(
      "hourly", po::value<int>(&p.hourly)->default_value(0), "")(
      "daily", po::value<int>(&p.daily)->default_value(0), "")(
      "weekly", po::value<int>(&p.weekly)->default_value(0), "")(
      "monthly", po::value<int>(&p.monthly)->default_value(0), "")(
      "dry-run", "list what would be removed");
  po::variables_map vm;
  if (auto rc = ParseCommand(args,
                             "prune --vault DIR [--host H --volume V] "
                             "--keep-last N [--hourly N] [--daily N] "
                             "[--weekly N] [--monthly N] [--dry-run]",
                             desc, vm)) {
    return *rc;
  }
  if (auto rc = CheckNameArgs(vm, "prune", {"host", "volume"})) return *rc;
  auto opened = OpenVault(vm, false, /*writable=*/vm.count("dry-run") == 0);
  if (!opened.ok()) return Fail(vm, "prune", opened.status());
  std::vector<VolumeName> volumes;
  if (vm.count("host") && vm.count("volume")) {
    volumes.push_back(
        {vm["host"].as<std::string>(), vm["volume"].as<std::string>()});
  } else {
    auto all = opened->vault->ListVolumes();
    if (!all.ok()) return Fail(vm, "prune", all.status());
    volumes = *all;
  }
  auto result = Prune(*opened->vault, volumes, p, vm.count("dry-run") > 0);
  if (!result.ok()) return Fail(vm, "prune", result.status());
  auto list = [](const auto& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& [vol, id] : v) {
      a.push_back(vol.host + "/" + vol.volume + "@" + id);
    }
    return a;
  };
  if (vm.count("json")) {
    PrintJson({{"ok", true},
               {"dry_run", vm.count("dry-run") > 0},
               {"kept", list(result->kept)},
               {"removed", list(result->removed)},
               {"in_use", list(result->in_use)}});
  } else {
    for (const auto& s : list(result->removed)) {
      std::cout << (vm.count("dry-run") ? "would remove " : "removed ")
                << s.get<std::string>() << "\n";
    }
    for (const auto& s : list(result->in_use)) {
      std::cout << "kept " << s.get<std::string>()
                << ": a running receive builds on it; prune again later\n";
    }
    std::cout << result->kept.size() << " versions kept, "
              << result->removed.size() << " removed; run `cbt-receiver gc` "
              << "to free their chunks\n";
  }
  return common::kExitOk;
}

namespace {

void PrintGcResult(const po::variables_map& vm, int format, const GcResult& r) {
  if (vm.count("json")) {
    PrintJson({{"ok", true},
               {"format", format},
               {"indexes", r.indexes},
               {"referenced", r.referenced},
               {"chunks_seen", r.chunks_seen},
               {"chunks_deleted", r.chunks_deleted},
               {"chunks_in_grace", r.chunks_in_grace},
               {"packs_seen", r.packs_seen},
               {"packs_deleted", r.packs_deleted},
               {"packs_repacked", r.packs_repacked},
               {"packs_written", r.packs_written},
               {"packs_in_grace", r.packs_in_grace},
               {"orphan_packs_removed", r.orphan_packs_removed},
               {"packs_pinned", r.packs_pinned},
               {"dead_sessions_ended", r.dead_sessions_ended},
               {"bytes_reclaimed", r.bytes_reclaimed},
               {"bytes_rewritten", r.bytes_rewritten},
               {"temp_files_removed", r.temp_files_removed}});
    return;
  }
  if (format == 1) {
    std::cout << r.chunks_deleted << " of " << r.chunks_seen
              << " chunks deleted (" << r.referenced << " referenced by "
              << r.indexes << " versions, " << r.chunks_in_grace
              << " unreferenced but within the grace period); "
              << r.temp_files_removed
              << " temporary files of interrupted receives removed\n";
    return;
  }
  std::cout << r.packs_deleted << " dead and " << r.packs_repacked << " of "
            << r.packs_seen << " packs freed (" << r.referenced
            << " live chunks of " << r.indexes << " versions kept, "
            << r.packs_written << " new packs); " << r.bytes_reclaimed
            << " bytes reclaimed, " << r.bytes_rewritten << " rewritten; "
            << r.packs_in_grace << " packs within the grace period, "
            << r.packs_pinned << " in use by running receives; "
            << r.orphan_packs_removed << " orphaned packs and "
            << r.temp_files_removed << " temporary files removed\n";
}

}  // namespace

int RunGc(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("grace-seconds", po::value<int64_t>()->default_value(3600),
                     "spare unreferenced chunks modified this recently")(
      "wait",
      "wait for a running gc (a format-1 vault: for running receives) "
      "instead of refusing")(
      "repack-below", po::value<double>()->default_value(0.5),
      "repack packs whose live part is below this fraction (format 2)")(
      "dry-run", "count only");
  po::variables_map vm;
  if (auto rc = ParseCommand(
          args, "gc --vault DIR [--grace-seconds N] [--wait] [--dry-run]", desc,
          vm)) {
    return *rc;
  }
  auto opened = OpenVault(vm, false, /*writable=*/true);
  if (!opened.ok()) return Fail(vm, "gc", opened.status());
  GcOptions options;
  options.grace_ms = vm["grace-seconds"].as<int64_t>() * 1000;
  options.wait = vm.count("wait") > 0;
  options.dry_run = vm.count("dry-run") > 0;
  options.repack_below = vm["repack-below"].as<double>();
  if (!(options.repack_below >= 0 && options.repack_below <= 1)) {
    std::cerr << "cbt-receiver gc: --repack-below must be between 0 and 1\n";
    return common::kExitUsage;
  }
  auto r = CollectGarbage(*opened->vault, options);
  if (!r.ok()) return Fail(vm, "gc", r.status());
  PrintGcResult(vm, opened->vault->format(), *r);
  return common::kExitOk;
}

}  // namespace cbtd::receiver::cli
