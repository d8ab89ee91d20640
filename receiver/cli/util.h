// Helpers shared by the cbt-receiver subcommands (cli_<name>.cc): option
// parsing with --help, the vault opener, status -> exit code, JSON output.
#ifndef CBTD_RECEIVER_CLI_UTIL_H_
#define CBTD_RECEIVER_CLI_UTIL_H_

#include <boost/program_options.hpp>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "receiver/local_vault.h"
#include "receiver/vault.h"
#include "transport/tenant_key.h"

namespace cbtd::receiver::cli {

namespace po = boost::program_options;

// Parses args (args[0] = command name) against `desc` (+ --help, --vault,
// --ceph-conf, --ceph-user, --ceph-op-timeout, --json). Returns an exit code if
// the command should stop now (help printed or bad usage), std::nullopt to
// continue.
std::optional<int> ParseCommand(
    std::span<char*> args, std::string_view usage,
    po::options_description& desc, po::variables_map& vm,
    const po::positional_options_description* pos = nullptr);

// The vault of --vault: a directory (receiver/local_vault.h decides its
// format), or "rados:POOL[/NAMESPACE]" (receiver/rados_vault.h, with
// --ceph-conf, --ceph-user and --ceph-op-timeout). `writable`: the command
// will write, so a RADOS vault checks at open that its Ceph user may
// (PERMISSION_DENIED naming the missing capability); a directory needs no
// check. FAILED_PRECONDITION for rados: in a build without RADOS support.
absl::StatusOr<OpenedVault> OpenVault(const po::variables_map& vm, bool create,
                                      bool writable);
// OpenVault of `where` instead of --vault (migrate's --to).
absl::StatusOr<OpenedVault> OpenVaultAt(const po::variables_map& vm,
                                        const std::string& where, bool create,
                                        bool writable);

// Usage error (prints "cbt-receiver CMD: invalid --FLAG '...': ..." and
// returns kExitUsage) unless each of `flags` that was given is a valid
// vault name (ValidateName); std::nullopt to continue.
std::optional<int> CheckNameArgs(const po::variables_map& vm,
                                 std::string_view cmd,
                                 std::initializer_list<const char*> flags);

// The exit code for an error (common/cli.h): refused input -> kExitRefused,
// damage -> kExitDamaged, busy -> kExitUnavailable, no such host, volume
// or version (NOT_FOUND) -> kExitNotFound, else kExitFailure.
int ExitCodeFor(const absl::Status& s);

// Prints "cbt-receiver CMD: message" (or a JSON error object with --json)
// and returns ExitCodeFor(s).
int Fail(const po::variables_map& vm, std::string_view cmd,
         const absl::Status& s);

void PrintJson(const nlohmann::json& j);

// The tenant key of --key-file (transport/key_file.h), none without it.
// Errors name the file (NOT_FOUND, PERMISSION_DENIED, DATA_LOSS, ...).
absl::StatusOr<std::optional<transport::TenantKey>> LoadKeyOption(
    const po::variables_map& vm);

// Subcommands.
int RunReceive(std::span<char*> args);
int RunVersions(std::span<char*> args);
int RunRestore(std::span<char*> args);
int RunVerify(std::span<char*> args);
int RunPrune(std::span<char*> args);
int RunGc(std::span<char*> args);
int RunMigrate(std::span<char*> args);
int RunTenant(std::span<char*> args);
int RunServe(std::span<char*> args);  // cli_serve.cc

}  // namespace cbtd::receiver::cli

#endif  // CBTD_RECEIVER_CLI_UTIL_H_
