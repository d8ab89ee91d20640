// cbtctl versions: a volume's versions at the receiver,
// through cbtd (which holds the receiver's address and this host's TLS
// identity).
#include <iostream>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "common/cli.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

int RunVersionsCommand(std::span<char*> args) {
  po::options_description desc("Options");
  std::string volume;
  desc.add_options()("volume", po::value<std::string>(&volume)->required(),
                     "a configured volume (first argument)");
  po::positional_options_description positional;
  positional.add("volume", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(args, "versions VOLUME", desc, positional,
                                     vm, opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::ListVersionsResponse> r = client.ListVersions(volume);
  if (!r.ok()) return ReportVaultError(r.status());
  if (opts.json) {
    std::cout << ToJson(*r) << "\n";
    return common::kExitOk;
  }
  for (const control::VersionInfo& v : r->versions()) {
    std::cout << v.version_id() << "  " << FormatUnix(v.created_unix()) << "  "
              << HumanBytes(v.volume_bytes()) << "  "
              << (v.base_version_id().empty() ? "full"
                                              : "on " + v.base_version_id())
              << "\n";
  }
  if (r->versions().empty()) std::cerr << volume << ": no versions yet\n";
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
