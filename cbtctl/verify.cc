// cbtctl verify: every chunk of a version re-read at the receiver,
// through cbtd (which holds the receiver's address and this host's TLS
// identity).
#include <iostream>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "common/cli.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

int RunVerifyCommand(std::span<char*> args) {
  po::options_description desc("Options");
  std::string volume, version;
  desc.add_options()("volume", po::value<std::string>(&volume)->required(),
                     "a configured volume (first argument)")(
      "version", po::value<std::string>(&version)->required(),
      "the version to read back (second argument)");
  po::positional_options_description positional;
  positional.add("volume", 1).add("version", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(args, "verify VOLUME VERSION", desc,
                                     positional, vm, opts)) {
    return *exit;
  }
  control::VerifyRequest request;
  request.set_volume(volume);
  request.set_version(version);
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::VerifyResponse> r = client.Verify(request);
  if (!r.ok()) return ReportVaultError(r.status());
  if (opts.json) {
    std::cout << ToJson(*r) << "\n";
  } else {
    for (const std::string& p : r->problems()) std::cout << p << "\n";
    std::cout << volume << "@" << version << ": " << r->chunks_checked()
              << " chunks checked, "
              << (r->problems().empty()
                      ? "intact"
                      : std::to_string(r->problems_size()) + " problem(s)")
              << "\n";
  }
  return r->problems().empty() ? common::kExitOk : common::kExitDamaged;
}

}  // namespace cbtd::cbtctl
