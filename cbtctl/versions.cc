// cbtctl versions: a volume's versions at the receiver,
// through cbtd (which holds the receiver's address and this host's TLS
// identity).
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "common/cli.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

namespace {

std::string Describe(const control::VersionInfo& v) {
  return absl::StrCat(
      HumanBytes(v.volume_bytes()), "  ",
      v.base_version_id().empty() ? "full" : "on " + v.base_version_id());
}

// A volume: one line per version, naming its group version if any. A
// group: one line per group version, then one per member.
void PrintVersions(const std::string& target,
                   const control::ListVersionsResponse& r) {
  std::string current;
  for (const control::VersionInfo& v : r.versions()) {
    if (v.group() != target) {
      std::cout << v.version_id() << "  " << FormatUnix(v.created_unix())
                << "  " << Describe(v)
                << (v.group().empty() ? ""
                                      : absl::StrCat("  group ", v.group(), "@",
                                                     v.group_version_id()))
                << "\n";
      continue;
    }
    if (v.group_version_id() != current) {
      current = v.group_version_id();
      std::cout << current << "  " << FormatUnix(v.created_unix()) << "  group "
                << target << "\n";
    }
    std::cout << "  " << v.volume() << "@" << v.version_id() << "  "
              << Describe(v) << "\n";
  }
}

}  // namespace

int RunVersionsCommand(std::span<char*> args) {
  po::options_description desc("Options");
  std::string volume;
  desc.add_options()("volume", po::value<std::string>(&volume)->required(),
                     "a configured volume, or a group: its group versions "
                     "(first argument)");
  po::positional_options_description positional;
  positional.add("volume", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(args, "versions VOLUME|GROUP", desc,
                                     positional, vm, opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::ListVersionsResponse> r = client.ListVersions(volume);
  if (!r.ok()) return ReportVaultError(r.status());
  if (opts.json) {
    std::cout << ToJson(*r) << "\n";
    return common::kExitOk;
  }
  PrintVersions(volume, *r);
  if (r->versions().empty()) std::cerr << volume << ": no versions yet\n";
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
