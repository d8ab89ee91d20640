// cbtd: the root daemon that snapshots volumes, tracks their changed blocks
// and streams incremental backups to a cbt-receiver.
#include <signal.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <string>

#include "agent/cbt_change_tracker.h"
#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/key_source.h"
#include "agent/lvm_snapshot_port.h"
#include "agent/remote_sender.h"
#include "agent/remote_vault.h"
#include "cbt/device_mapper.h"
#include "cbt/system.h"
#include "common/cli.h"
#include "snapshot/linux.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  std::string config_path;
  po::options_description opts(
      "Usage: cbtd [OPTIONS]\n\n"
      "cbtd is the cbtd backup agent: it takes crash-consistent snapshots of\n"
      "LVM and device-mapper volumes, tracks which blocks changed since the\n"
      "last backup and streams only those to a cbt-receiver.\n\n"
      "Options");
  opts.add_options()("help,h", "show this help")("version,V",
                                                 "show the version")(
      "config,c",
      po::value<std::string>(&config_path)
          ->default_value("/etc/cbtd/cbtd.conf"),
      "configuration file (INI)")("check-config",
                                  "validate the configuration and exit");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "cbtd: " << e.what() << "; run 'cbtd --help'\n";
    return cbtd::common::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return cbtd::common::kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "cbtd " << CBTD_VERSION << "\n";
    return cbtd::common::kExitOk;
  }
  if (vm.count("check-config")) {
    return cbtd::agent::CheckConfigCommand(config_path);
  }

  // Everything cbtd creates (socket, state, temp files) is private.
  umask(077);
  // Signals go to the service loop only: block them before any thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<cbtd::agent::Config> config =
      cbtd::agent::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "cbtd: " << config.status().message() << "\n";
    return cbtd::common::kExitUsage;
  }
  // The ports a backup run drives (agent/backup_ports.h), over the real
  // snapshot/, cbt/ and transport/ modules.
  absl::StatusOr<cbtd::agent::ReceiverEndpoint> receiver =
      cbtd::agent::ResolveReceiver(config->receiver);
  if (!receiver.ok()) {
    std::cerr << "cbtd: backups will fail until the config is fixed: "
              << receiver.status().message() << "\n";
  }
  // Per-pool and per-era lock files live next to the control socket.
  const size_t slash = config->socket_path.rfind('/');
  const std::string lock_dir = slash == std::string::npos || slash == 0
                                   ? std::string("/run/cbtd")
                                   : config->socket_path.substr(0, slash);
  auto lvm = cbtd::snapshot::NewLinuxLvm();
  auto dm = cbtd::snapshot::NewLinuxDeviceMapper();
  auto host = cbtd::snapshot::NewLinuxHost();
  auto runner = cbtd::cbt::NewLinuxCommandRunner();
  auto cbt_dm = cbtd::cbt::NewLinuxDeviceMapper();
  ::mkdir(lock_dir.c_str(), 0700);
  cbtd::agent::LvmSnapshotPort snapshots(*lvm, *dm, *host);
  cbtd::agent::CbtChangeTracker tracker(*runner, *cbt_dm, *lvm, *dm, *host,
                                        lock_dir);
  {
    std::vector<std::string> paths;
    for (const auto& v : config->volumes) paths.push_back(v.path);
    auto released = snapshots.ReleaseStaleHolds(paths);
    if (!released.ok()) {
      std::cerr << "cbtd: releasing what a previous cbtd held: "
                << released.status().message() << "\n";
    } else {
      for (const std::string& line : *released) {
        std::cerr << "cbtd: a previous cbtd died in a consistency point: "
                  << line << "\n";
      }
    }
  }
  // The tenant key; a changed [agent] encryption or key_file takes effect
  // at the next start.
  cbtd::agent::KeySource keys(config->encryption, [](const std::string& m) {
    std::cerr << SD_NOTICE << "cbtd: " << m << std::endl;
  });
  cbtd::agent::RemoteSender sender(receiver, keys);
  cbtd::agent::RemoteVault vault(std::move(receiver), keys);
  cbtd::agent::BackupPorts ports{&snapshots, &tracker, &sender, &vault, &vault};
  return cbtd::agent::RunDaemon(*std::move(config), ports);
}
