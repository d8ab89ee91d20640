// cbt-receiver verify: re-reads chunks and reports damaged versions.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/verify.h"

namespace cbtd::receiver::cli {

int RunVerify(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("host", po::value<std::string>(), "source host")(
      "volume", po::value<std::string>(), "volume id")(
      "version", po::value<std::string>(), "only this version")(
      "threads", po::value<int>()->default_value(2), "parallel readers")(
      "key-file", po::value<std::string>(),
      "tenant key file: fully check encrypted versions (without it their "
      "chunks are checked against their stored checksums only)");
  po::variables_map vm;
  if (auto rc = ParseCommand(
          args,
          "verify --vault DIR [--host H --volume V [--version ID]] "
          "[--key-file FILE]",
          desc, vm)) {
    return *rc;
  }
  if (auto rc = CheckNameArgs(vm, "verify", {"host", "volume", "version"})) {
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
  auto key = LoadKeyOption(vm);
  if (!key.ok()) return Fail(vm, "verify", key.status());
  scope.key = *std::move(key);
  auto opened = OpenVault(vm, false, /*writable=*/false);
  if (!opened.ok()) return Fail(vm, "verify", opened.status());
  auto report = VerifyVault(*opened->vault, scope);
  if (!report.ok()) return Fail(vm, "verify", report.status());
  if (vm.count("json")) {
    nlohmann::json damaged = nlohmann::json::array();
    for (const auto& d : report->damaged) {
      nlohmann::json chunks = nlohmann::json::array();
      for (const auto& c : d.chunks) {
        chunks.push_back({{"chunk", c.chunk_index},
                          {"hash", c.hash.ToHex()},
                          {"missing", c.missing},
                          {"reason", c.reason}});
      }
      damaged.push_back({{"host", d.volume.host},
                         {"volume", d.volume.volume},
                         {"version", d.version},
                         {"reason", d.reason},
                         {"chunks", chunks}});
    }
    PrintJson({{"ok", report->ok()},
               {"versions_checked", report->versions_checked},
               {"chunks_checked", report->chunks_checked},
               {"chunks_checksum_only", report->chunks_checksum_only},
               {"damaged", damaged}});
  } else {
    // One line per damaged position, so nothing hides behind the first.
    for (const auto& d : report->damaged) {
      const std::string name =
          absl::StrCat(d.volume.host, "/", d.volume.volume, "@", d.version);
      if (d.chunks.empty()) {
        std::cout << "DAMAGED " << name << ": " << d.reason << "\n";
      }
      for (const auto& c : d.chunks) {
        std::cout << "DAMAGED " << name << ": " << c.reason << " (chunk "
                  << c.chunk_index << ")\n";
      }
    }
    std::cout << report->versions_checked << " versions, "
              << report->chunks_checked << " chunks checked; "
              << report->damaged.size() << " damaged\n";
    if (report->chunks_checksum_only > 0) {
      std::cout << report->chunks_checksum_only
                << " sealed chunks of encrypted versions were checked "
                   "against their stored checksums only: give --key-file "
                   "for full verification\n";
    }
  }
  return report->ok() ? common::kExitOk : common::kExitDamaged;
}

}  // namespace cbtd::receiver::cli
