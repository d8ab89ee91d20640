// cbtd: the root daemon that snapshots volumes, tracks their changed blocks
// and streams incremental backups to a cbt-receiver.
#include <boost/program_options.hpp>
#include <iostream>
#include <string>

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
  std::cerr << "cbtd: the daemon loop is not part of this build yet; use "
               "cbtctl's offline commands\n";
  return cbtd::common::kExitFailure;
}
