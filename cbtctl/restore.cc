// cbtctl restore: a version from the receiver onto a file or device, or
// the volume itself rolled back (--in-place), through cbtd (which holds
// the receiver's address and this host's TLS identity). The restore is a
// run of cbtd's: `cbtctl runs` shows its progress, `cbtctl cancel` stops it.
#include <iostream>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "common/cli.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

int RunRestoreCommand(std::span<char*> args) {
  po::options_description desc("Options");
  control::RestoreRequest request;
  std::string volume, version, target, from, state;
  bool verify = false;
  bool in_place = false;
  desc.add_options()("volume", po::value<std::string>(&volume)->required(),
                     "a configured volume (first argument)")(
      "version", po::value<std::string>(&version)->required(),
      "the version to restore (see 'cbtctl versions VOLUME')")(
      "target", po::value<std::string>(&target),
      "block device or file to write (a file is created); never the "
      "volume itself")(
      "in-place", po::bool_switch(&in_place),
      "roll the volume itself back to the version: only the chunks that "
      "differ are written; its device must be idle (unmounted, not open); "
      "its next backup compares every chunk once")(
      "from", po::value<std::string>(&from),
      "incremental: the target holds this version (checked "
      "against --state)")(
      "state", po::value<std::string>(&state),
      "the target's state file: records which version it holds")(
      "verify", po::bool_switch(&verify),
      "read back what was written and check it");
  po::positional_options_description positional;
  positional.add("volume", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit = ParseDaemonCommand(
          args,
          "restore VOLUME --version V (--target PATH [--from V0 --state FILE] "
          "| --in-place) [--verify]",
          desc, positional, vm, opts)) {
    return *exit;
  }
  if (target.empty() == !in_place) {
    std::cerr << "cbtctl restore: give --target PATH, or --in-place to roll "
                 "the volume itself back\n";
    return common::kExitUsage;
  }
  if (!from.empty() && state.empty()) {
    std::cerr << "cbtctl restore: --from needs --state (the file that says "
                 "which version the target holds)\n";
    return common::kExitUsage;
  }
  request.set_volume(volume);
  request.set_version(version);
  request.set_target(target);
  request.set_from_version(from);
  request.set_state_file(state);
  request.set_verify(verify);
  request.set_in_place(in_place);
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::RestoreResponse> r = client.Restore(request);
  if (!r.ok()) return ReportVaultError(r.status());
  if (opts.json) {
    std::cout << ToJson(*r) << "\n";
  } else {
    std::cout << (in_place ? "rolled back " : "restored ") << volume << "@"
              << version << (in_place ? " in place" : " to " + target)
              << ": wrote " << HumanBytes(r->bytes_written()) << " ("
              << r->chunks_written() << " chunks, " << r->chunks_zeroed()
              << " zeroed, " << r->chunks_skipped() << " unchanged)"
              << (verify ? ", verified" : "") << "\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
