// cbt-receiver tenant: groups hosts under one tenant (receiver/tenants.h)
// and lists the vault's tenants.
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "receiver/cli/util.h"
#include "receiver/tenants.h"

namespace cbtd::receiver::cli {
namespace {

constexpr char kUsage[] =
    "Usage: cbt-receiver tenant ACTION --vault DIR ...\n"
    "\n"
    "  assign --host H --tenant T [--join-existing] [--wait] [--create]\n"
    "           put host H in tenant T, before H's first backup\n"
    "  list [--json]\n"
    "           every tenant: its hosts, key, packs\n"
    "\n"
    "A tenant is the unit of deduplication and trust: its hosts store each\n"
    "chunk once, may reference and restore each other's chunks, and learn\n"
    "which chunks the tenant holds; nothing crosses tenants. A host is its\n"
    "own tenant unless assigned. An assignment is permanent: it is refused\n"
    "for a host that already has versions or chunks in another tenant\n"
    "(its versions name them), or that is assigned elsewhere. Joining a\n"
    "tenant that already holds chunks or versions needs --join-existing.\n"
    "The hosts of a tenant share one key (cbtctl key export on one, cbtctl\n"
    "key import on the others): losing it loses the whole tenant's backups.\n"
    "Exit codes: 0 ok, 2 usage, 3 refused (nothing changed), 4 damaged\n"
    "vault object, 5 a receive is running, 6 no vault there.\n";

// Parses args (args[0] = the action) with the shared options, under the
// name "tenant ACTION" in messages.
std::optional<int> ParseAction(std::span<char*> args, std::string_view usage,
                               po::options_description& desc,
                               po::variables_map& vm, std::string& name) {
  name = "tenant " + std::string(args[0]);
  std::vector<char*> argv(args.begin(), args.end());
  argv[0] = name.data();
  return ParseCommand(argv, usage, desc, vm);
}

int Assign(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("host", po::value<std::string>(), "the host to assign")(
      "tenant", po::value<std::string>(), "its tenant")(
      "join-existing",
      "allow a tenant that already holds chunks or versions: H then shares "
      "them")("wait", "wait for running receives instead of refusing")(
      "create",
      "create the vault (a directory, or one in the RADOS namespace) if there "
      "is none");
  po::variables_map vm;
  std::string name;
  if (auto rc = ParseAction(args,
                            "tenant assign --vault DIR --host H --tenant T "
                            "[--join-existing] [--wait] [--create] [--json]",
                            desc, vm, name)) {
    return *rc;
  }
  for (const char* req : {"host", "tenant"}) {
    if (!vm.count(req)) {
      std::cerr << "cbt-receiver tenant assign: --" << req << " is required\n";
      return common::kExitUsage;
    }
  }
  if (auto rc = CheckNameArgs(vm, name, {"host", "tenant"})) return *rc;
  auto opened = OpenVault(vm, vm.count("create") > 0, /*writable=*/true);
  if (!opened.ok()) return Fail(vm, name, opened.status());
  const std::string host = vm["host"].as<std::string>();
  const std::string tenant = vm["tenant"].as<std::string>();
  AssignOptions options;
  options.join_existing = vm.count("join-existing") > 0;
  options.wait = vm.count("wait") > 0;
  auto r = AssignTenant(*opened->vault, host, tenant, options);
  if (!r.ok()) return Fail(vm, name, r.status());
  if (vm.count("json")) {
    PrintJson({{"ok", true},
               {"host", host},
               {"tenant", tenant},
               {"already", r->already},
               {"pinned", r->pinned},
               {"key_fingerprint", r->key_fingerprint}});
    return common::kExitOk;
  }
  for (const std::string& p : r->pinned) {
    std::cout << "host " << p << " assigned to its own tenant " << p
              << " (it keeps its chunks there)\n";
  }
  std::cout << "host " << host << (r->already ? " was already" : " is now")
            << " in tenant " << tenant;
  if (!r->key_fingerprint.empty()) {
    std::cout << "; the tenant's key is " << r->key_fingerprint
              << ": import it on " << host
              << " (cbtctl key export on a host of the tenant, cbtctl key "
                 "import on this one)";
  }
  std::cout << "\n";
  return common::kExitOk;
}

int List(std::span<char*> args) {
  po::options_description desc("Options");
  po::variables_map vm;
  std::string name;
  if (auto rc = ParseAction(args, "tenant list --vault DIR [--json]", desc, vm,
                            name)) {
    return *rc;
  }
  auto opened = OpenVault(vm, false, /*writable=*/false);
  if (!opened.ok()) return Fail(vm, name, opened.status());
  auto tenants = ListTenants(*opened->vault);
  if (!tenants.ok()) return Fail(vm, name, tenants.status());
  if (vm.count("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const TenantSummary& t : *tenants) {
      nlohmann::json hosts = nlohmann::json::array();
      for (const TenantHost& h : t.hosts) {
        hosts.push_back({{"host", h.host}, {"assigned", h.assigned}});
      }
      out.push_back({{"tenant", t.tenant},
                     {"hosts", hosts},
                     {"key_fingerprint", t.key_fingerprint},
                     {"packs", t.packs},
                     {"pack_bytes", t.pack_bytes}});
    }
    PrintJson(out);
    return common::kExitOk;
  }
  for (const TenantSummary& t : *tenants) {
    std::cout << t.tenant << "  hosts";
    if (t.hosts.empty()) std::cout << " -";
    for (const TenantHost& h : t.hosts) {
      std::cout << " " << h.host << (h.assigned ? "" : " (own)");
    }
    std::cout << "  "
              << (t.key_fingerprint.empty() ? std::string("no key")
                                            : "key " + t.key_fingerprint)
              << "  " << t.packs << " packs, " << t.pack_bytes << " bytes\n";
  }
  return common::kExitOk;
}

}  // namespace

int RunTenant(std::span<char*> args) {
  if (args.size() < 2 || std::string_view(args[1]) == "--help" ||
      std::string_view(args[1]) == "-h") {
    (args.size() < 2 ? std::cerr : std::cout) << kUsage;
    return args.size() < 2 ? common::kExitUsage : common::kExitOk;
  }
  const std::string_view action = args[1];
  if (action == "assign") return Assign(args.subspan(1));
  if (action == "list") return List(args.subspan(1));
  std::cerr << "cbt-receiver tenant: unknown action '" << action << "'\n"
            << kUsage;
  return common::kExitUsage;
}

}  // namespace cbtd::receiver::cli
