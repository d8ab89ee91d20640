#include "receiver/receiver_cli.h"

#include <iostream>
#include <span>

#include "common/cli.h"

namespace cbtd::receiver {
namespace {

int RunVersion(std::span<char*>);

// One line per subcommand; the implementation is in cli_<name>.cc.
constexpr common::Subcommand kCommands[] = {
    {"version", "print the version and the stream format it speaks",
     RunVersion},
};

int RunVersion(std::span<char*>) {
  std::cout << "cbt-receiver " << CBTD_VERSION << "\n";
  return common::kExitOk;
}

}  // namespace

int ReceiverMain(int argc, char** argv) {
  static constexpr common::Program kProgram{
      "cbt-receiver",
      "cbt-receiver keeps the versioned, deduplicated vault of cbtd backups:\n"
      "it applies incremental streams atomically, restores any version in\n"
      "full or incrementally, verifies and prunes.",
      kCommands};
  return common::DispatchSubcommand(kProgram, argc, argv);
}

}  // namespace cbtd::receiver
