// cbt-receiver restore: writes a version to a file or block device, in full
// or incrementally (--from) onto a target that holds an older version.
#include <sys/stat.h>

#include <iostream>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/vault_restore.h"
#include "restore/restore.h"

namespace cbtd::receiver::cli {

using restore::OpenRestoreTarget;
using restore::RestoreOptions;

int RunRestore(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("host", po::value<std::string>(), "source host")(
      "volume", po::value<std::string>(), "volume id")(
      "version", po::value<std::string>(), "version to restore")(
      "target", po::value<std::string>(),
      "file or block device to write; /dev/null reads and checks every "
      "chunk and keeps nothing (a restore test)")(
      "from", po::value<std::string>(),
      "incremental: the target holds this version; write only what differs")(
      "state", po::value<std::string>(),
      "target state file (default TARGET.cbtd-state for a regular file)")(
      "verify", "re-read and check what was written")(
      "threads", po::value<int>()->default_value(4),
      "chunk batches read, checked and written at once (packs are read "
      "with direct I/O: more than the cores keeps the disk busy)")(
      "key-file", po::value<std::string>(),
      "tenant key file: needed for an encrypted version (cbtctl key export "
      "on the host, or cbtctl key import from its recovery text)");
  po::variables_map vm;
  if (auto rc = ParseCommand(args,
                             "restore --vault DIR --host H --volume V "
                             "--version ID --target PATH [--from ID] "
                             "[--verify] [--key-file FILE]",
                             desc, vm)) {
    return *rc;
  }
  for (const char* req : {"host", "volume", "version", "target"}) {
    if (!vm.count(req)) {
      std::cerr << "cbt-receiver restore: --" << req << " is required\n";
      return common::kExitUsage;
    }
  }
  if (auto rc =
          CheckNameArgs(vm, "restore", {"host", "volume", "version", "from"})) {
    return *rc;
  }
  const std::string path = vm["target"].as<std::string>();
  if (restore::IsDiscardTarget(path) &&
      (vm.count("verify") || vm.count("from") || vm.count("state"))) {
    std::cerr << "cbt-receiver restore: --target /dev/null keeps nothing: "
                 "--verify, --from and --state need a file or a block "
                 "device\n";
    return common::kExitUsage;
  }
  auto key = LoadKeyOption(vm);
  if (!key.ok()) return Fail(vm, "restore", key.status());
  auto opened = OpenVault(vm, false, /*writable=*/false);
  if (!opened.ok()) return Fail(vm, "restore", opened.status());
  auto target = OpenRestoreTarget(path);  // creates a missing file
  if (!target.ok()) return Fail(vm, "restore", target.status());
  RestoreOptions opts;
  if (vm.count("from")) opts.from_version = vm["from"].as<std::string>();
  opts.verify = vm.count("verify") > 0;
  opts.threads = vm["threads"].as<int>();
  opts.key = *std::move(key);
  if (vm.count("state")) {
    opts.state_path = vm["state"].as<std::string>();
  } else if (struct stat st;
             ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    // A device has no natural place for its state file: --state says.
    opts.state_path = path + ".cbtd-state";
  }
  const VolumeName vol{vm["host"].as<std::string>(),
                       vm["volume"].as<std::string>()};
  const std::string version = vm["version"].as<std::string>();
  auto stats = RestoreVersion(*opened->vault, vol, version, **target, opts);
  if (!stats.ok()) return Fail(vm, "restore", stats.status());
  if (vm.count("json")) {
    PrintJson({{"ok", true},
               {"version", version},
               {"incremental_from", opts.from_version},
               {"chunks", stats->chunks},
               {"chunks_written", stats->chunks_written},
               {"chunks_zeroed", stats->chunks_zeroed},
               {"chunks_skipped", stats->chunks_skipped},
               {"bytes_written", stats->bytes_written},
               {"chunks_verified", stats->chunks_verified}});
  } else {
    std::cout << "restored " << vol.host << "/" << vol.volume << "@" << version
              << " to " << path << ": " << stats->chunks_written
              << " chunks written, " << stats->chunks_zeroed << " zeroed, "
              << stats->chunks_skipped << " skipped"
              << (opts.verify ? ", verified" : "") << "\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::receiver::cli
