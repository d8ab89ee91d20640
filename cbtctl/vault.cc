// cbtctl versions / restore / verify: a volume's versions at the receiver,
// through cbtd (which holds the receiver's address and this host's TLS
// identity).
#include <iostream>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "control/control_client.h"
#include "common/cli.h"

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
  if (!r.ok()) return ReportError(r.status());
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

int RunRestoreCommand(std::span<char*> args) {
  po::options_description desc("Options");
  control::RestoreRequest request;
  std::string volume, version, target, from, state;
  bool verify = false;
  desc.add_options()("volume", po::value<std::string>(&volume)->required(),
                     "a configured volume (first argument)")(
      "version", po::value<std::string>(&version)->required(),
      "the version to restore (see 'cbtctl versions VOLUME')")(
      "target", po::value<std::string>(&target)->required(),
      "block device or file to write (a file is created); never the "
      "volume itself")("from", po::value<std::string>(&from),
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
          "restore VOLUME --version V --target PATH [--from V0 --state FILE] "
          "[--verify]",
          desc, positional, vm, opts)) {
    return *exit;
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
  control::ControlClient client(opts.socket_path);
  absl::StatusOr<control::RestoreResponse> r = client.Restore(request);
  if (!r.ok()) return ReportError(r.status());
  if (opts.json) {
    std::cout << ToJson(*r) << "\n";
  } else {
    std::cout << "restored " << volume << "@" << version << " to " << target
              << ": wrote " << HumanBytes(r->bytes_written()) << " ("
              << r->chunks_written() << " chunks, " << r->chunks_zeroed()
              << " zeroed, " << r->chunks_skipped() << " unchanged)"
              << (verify ? ", verified" : "") << "\n";
  }
  return common::kExitOk;
}

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
  if (!r.ok()) return ReportError(r.status());
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
