#include "receiver/cli/commands.h"

#include <iostream>
#include <span>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "transport/stream_codec.h"

namespace cbtd::receiver::cli {
namespace {

int RunVersion(std::span<char*>);

// One line per subcommand; the implementation is in cli_<name>.cc.
constexpr common::Subcommand kCommands[] = {
    {"receive", "apply a stream from stdin to the vault, atomically",
     RunReceive},
    {"versions", "list versions; protect them; export an index", RunVersions},
    {"restore", "write a version to a file or device (full or incremental)",
     RunRestore},
    {"verify", "re-read chunks and report damaged versions", RunVerify},
    {"prune", "remove versions outside the retention policy", RunPrune},
    {"gc", "delete or repack data no version references", RunGc},
    {"migrate", "copy a first-format vault into a format-2 vault", RunMigrate},
    {"tenant", "group hosts under one tenant (shared dedup); list tenants",
     RunTenant},
    {"serve", "serve the vault to senders over gRPC with mutual TLS", RunServe},
    {"version", "print the version and the stream format it speaks",
     RunVersion},
};

int RunVersion(std::span<char*>) {
  std::cout << "cbt-receiver " << CBTD_VERSION << " (stream format "
            << transport::kStreamFormatVersion << ")\n";
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

}  // namespace cbtd::receiver::cli
