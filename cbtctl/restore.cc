// cbtctl restore: a version from the receiver onto a file or device, or
// the volume itself rolled back (--in-place), or every member of a group
// version (--group), through cbtd (which holds
// the receiver's address and this host's TLS identity). The restore is a
// run of cbtd's: `cbtctl runs` shows its progress, `cbtctl cancel` stops it.
#include <filesystem>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "common/cli.h"
#include "control/control_client.h"
#include "nlohmann/json.hpp"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

namespace {

void PrintRestored(const std::string& what, bool in_place,
                   const std::string& target, bool verify,
                   const control::RestoreResponse& r) {
  std::cout << (in_place ? "rolled back " : "restored ") << what
            << (in_place ? " in place" : " to " + target) << ": wrote "
            << HumanBytes(r.bytes_written()) << " (" << r.chunks_written()
            << " chunks, " << r.chunks_zeroed() << " zeroed, "
            << r.chunks_skipped() << " unchanged)"
            << (verify ? ", verified" : "") << "\n";
}

// Every member of group version `version` of `group`, each to
// `target_dir`/<volume> or in place, in member order; stops at the first
// failure, saying which members were restored.
int RestoreGroup(const std::string& socket, const std::string& group,
                 const std::string& version, const std::string& target_dir,
                 bool in_place, bool verify, bool json) {
  control::ControlClient client(socket);
  absl::StatusOr<control::ListVersionsResponse> listed =
      client.ListVersions(group);
  if (!listed.ok()) return ReportVaultError(listed.status());
  std::vector<control::VersionInfo> members;
  for (const control::VersionInfo& v : listed->versions()) {
    if (v.group() == group && v.group_version_id() == version) {
      members.push_back(v);
    }
  }
  if (members.empty()) {
    return ReportVaultError(absl::NotFoundError(
        absl::StrCat("no committed group version ", version, " of group '",
                     group, "'; 'cbtctl versions ", group, "' lists them")));
  }
  std::vector<std::string> done;
  nlohmann::json out = nlohmann::json::array();
  for (const control::VersionInfo& m : members) {
    control::RestoreRequest request;
    request.set_volume(m.volume());
    request.set_version(m.version_id());
    const std::string target =
        in_place ? "" : absl::StrCat(target_dir, "/", m.volume());
    request.set_target(target);
    request.set_verify(verify);
    request.set_in_place(in_place);
    absl::StatusOr<control::RestoreResponse> r = client.Restore(request);
    if (!r.ok()) {
      const std::string restored =
          done.empty() ? "none" : absl::StrJoin(done, ", ");
      return ReportVaultError(absl::Status(
          r.status().code(),
          absl::StrCat(m.volume(), "@", m.version_id(), ": ",
                       r.status().message(), " (members restored of ", group,
                       "@", version, ": ", restored, ")")));
    }
    done.push_back(m.volume());
    const std::string what = absl::StrCat(m.volume(), "@", m.version_id());
    if (json) {
      out.push_back(nlohmann::json::parse(ToJson(*r)));
      out.back()["volume"] = m.volume();
      out.back()["version"] = m.version_id();
      out.back()["target"] = target;
    } else {
      PrintRestored(what, in_place, target, verify, *r);
    }
  }
  if (json) std::cout << out.dump() << "\n";
  return common::kExitOk;
}

}  // namespace

int RunRestoreCommand(std::span<char*> args) {
  po::options_description desc("Options");
  control::RestoreRequest request;
  std::string volume, version, target, from, state, group, target_dir;
  bool verify = false;
  bool in_place = false;
  desc.add_options()("volume", po::value<std::string>(&volume),
                     "a configured volume (first argument)")(
      "group", po::value<std::string>(&group),
      "restore every member of the group version --version of this group "
      "(see 'cbtctl versions GROUP'), to --target-dir or --in-place")(
      "target-dir", po::value<std::string>(&target_dir),
      "with --group: write each member to a file named after its volume in "
      "this directory")(
      "version", po::value<std::string>(&version)->required(),
      "the version to restore (see 'cbtctl versions VOLUME'), or with "
      "--group the group version")(
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
          "| --in-place) [--verify]\n"
          "       cbtctl restore --group GROUP --version ID (--target-dir DIR "
          "| --in-place) [--verify]",
          desc, positional, vm, opts)) {
    return *exit;
  }
  // cbtd opens the paths, from its own working directory: send them whole.
  for (std::string* path : {&target, &state, &target_dir}) {
    if (!path->empty()) *path = std::filesystem::absolute(*path).string();
  }
  if (!group.empty()) {
    if (!volume.empty() || !target.empty() || !from.empty() ||
        target_dir.empty() == !in_place) {
      std::cerr << "cbtctl restore: --group takes --version and one of "
                   "--target-dir DIR or --in-place (no VOLUME, --target or "
                   "--from)\n";
      return common::kExitUsage;
    }
    return RestoreGroup(opts.socket_path, group, version, target_dir, in_place,
                        verify, opts.json);
  }
  if (volume.empty() || !target_dir.empty()) {
    std::cerr << "cbtctl restore: give a VOLUME (or --group GROUP; "
                 "--target-dir goes with --group)\n";
    return common::kExitUsage;
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
    PrintRestored(volume + "@" + version, in_place, target, verify, *r);
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
