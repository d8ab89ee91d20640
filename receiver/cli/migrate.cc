// cbt-receiver migrate: copies a vault of the first format into a new
// format-2 vault (receiver/migrate.h), checking every version.
#include <iostream>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/migrate.h"

namespace cbtd::receiver::cli {

int RunMigrate(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()(
      "to", po::value<std::string>(),
      "the format-2 vault to copy into (created if missing): a directory "
      "or rados:POOL[/NAMESPACE]");
  po::variables_map vm;
  if (auto rc = ParseCommand(args, "migrate --vault OLD --to NEW [--json]",
                             desc, vm)) {
    return *rc;
  }
  if (!vm.count("to")) {
    std::cerr << "cbt-receiver migrate: --to NEW is required\n";
    return common::kExitUsage;
  }
  auto from = OpenVault(vm, false, /*writable=*/false);
  if (!from.ok()) return Fail(vm, "migrate", from.status());
  auto to = OpenVaultAt(vm, vm["to"].as<std::string>(), /*create=*/true,
                        /*writable=*/true);
  if (!to.ok()) return Fail(vm, "migrate", to.status());
  auto r = MigrateVault(*from->vault, *to->vault);
  if (!r.ok()) return Fail(vm, "migrate", r.status());
  if (vm.count("json")) {
    PrintJson({{"ok", true},
               {"versions_copied", r->versions_copied},
               {"versions_already_there", r->versions_already_there},
               {"chunks_copied", r->chunks_copied},
               {"bytes_copied", r->bytes_copied},
               {"packs_written", r->packs_written}});
  } else {
    std::cout << r->versions_copied << " versions copied and checked ("
              << r->versions_already_there << " already there), "
              << r->chunks_copied << " chunks (" << r->bytes_copied
              << " bytes) in " << r->packs_written
              << " packs; the old vault is unchanged: remove it once "
                 "`cbt-receiver verify --vault NEW` passes\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::receiver::cli
