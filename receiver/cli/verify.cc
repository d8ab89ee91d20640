// cbt-receiver verify: re-reads chunks and reports damaged versions.
#include <iostream>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/verify.h"

namespace cbtd::receiver::cli {

int RunVerify(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("host", po::value<std::string>(), "source host")(
      "volume", po::value<std::string>(), "volume id")(
      "version", po::value<std::string>(), "only this version")(
      "threads", po::value<int>()->default_value(2), "parallel readers");
  po::variables_map vm;
  if (auto rc = ParseCommand(
          args, "verify --vault DIR [--host H --volume V [--version ID]]", desc,
          vm)) {
    return *rc;
  }
  VerifyScope scope;
  if (vm.count("host") != vm.count("volume") ||
      (vm.count("version") && !vm.count("host"))) {
    std::cerr << "cbt-receiver verify: give --host and --volume together "
                 "(and with --version)\n";
    return common::kExitUsage;
  }
  if (vm.count("host")) {
    scope.volume = VolumeName{vm["host"].as<std::string>(),
                              vm["volume"].as<std::string>()};
  }
  if (vm.count("version")) scope.version = vm["version"].as<std::string>();
  scope.threads = vm["threads"].as<int>();
  auto opened = OpenVault(vm, false);
  if (!opened.ok()) return Fail(vm, "verify", opened.status());
  auto report = VerifyVault(*opened->vault, scope);
  if (!report.ok()) return Fail(vm, "verify", report.status());
  if (vm.count("json")) {
    nlohmann::json damaged = nlohmann::json::array();
    for (const auto& d : report->damaged) {
      damaged.push_back({{"host", d.volume.host},
                         {"volume", d.volume.volume},
                         {"version", d.version},
                         {"reason", d.reason}});
    }
    PrintJson({{"ok", report->ok()},
               {"versions_checked", report->versions_checked},
               {"chunks_checked", report->chunks_checked},
               {"damaged", damaged}});
  } else {
    for (const auto& d : report->damaged) {
      std::cout << "DAMAGED " << d.volume.host << "/" << d.volume.volume << "@"
                << d.version << ": " << d.reason << "\n";
    }
    std::cout << report->versions_checked << " versions, "
              << report->chunks_checked << " chunks checked; "
              << report->damaged.size() << " damaged\n";
  }
  return report->ok() ? common::kExitOk : common::kExitDamaged;
}

}  // namespace cbtd::receiver::cli
