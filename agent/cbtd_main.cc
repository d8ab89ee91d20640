// cbtd: the root daemon that snapshots volumes, tracks their changed blocks
// and streams incremental backups to a cbt-receiver.
#include <signal.h>
#include <sys/stat.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <string>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/unwired_ports.h"
#include "common/cli.h"

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
  // The lead replaces these with the snapshot/, cbt/ and transport/
  // adapters (see agent/backup_ports.h).
  cbtd::agent::UnwiredPorts unwired;
  return cbtd::agent::RunDaemon(*std::move(config), unwired.ports());
}
