// cbtctl: the operator's command line for cbtd.
#include "cbtctl/commands.h"
#include "common/cli.h"

int main(int argc, char** argv) {
  const cbtd::common::Program program{
      "cbtctl",
      "cbtctl drives cbtd, the incremental block-level backup agent: it takes\n"
      "consistency points, shows what changed, sends backups to a\n"
      "cbt-receiver and restores them.",
      cbtd::cbtctl::CbtctlCommands()};
  return cbtd::common::DispatchSubcommand(program, argc, argv);
}
