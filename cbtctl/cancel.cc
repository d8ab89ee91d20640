// cbtctl cancel RUN: stop a queued or running backup.
#include <iostream>

#include "cbtctl/commands.h"
#include "cbtctl/daemon.h"
#include "control/control_client.h"

namespace cbtd::cbtctl {

namespace po = boost::program_options;

int RunCancelCommand(std::span<char*> args) {
  po::options_description desc("Options");
  int64_t run_id = 0;
  desc.add_options()("run", po::value<int64_t>(&run_id)->required(),
                     "the run to cancel (first argument; see 'cbtctl runs')");
  po::positional_options_description positional;
  positional.add("run", 1);
  po::variables_map vm;
  DaemonOptions opts;
  if (auto exit =
          ParseDaemonCommand(args, "cancel RUN", desc, positional, vm, opts)) {
    return *exit;
  }
  control::ControlClient client(opts.socket_path);
  if (absl::Status s = client.Cancel(run_id); !s.ok()) return ReportError(s);
  if (opts.json) {
    std::cout << "{\"cancelled\":" << run_id << "}\n";
  } else {
    std::cout << "run " << run_id
              << ": cancel requested; it stops at its next check and keeps "
                 "the previous base\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
