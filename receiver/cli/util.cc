#include "receiver/cli/util.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "transport/key_file.h"
#ifdef CBTD_RADOS
#include "receiver/rados_vault.h"
#endif

namespace cbtd::receiver::cli {

std::optional<int> ParseCommand(std::span<char*> args, std::string_view usage,
                                po::options_description& desc,
                                po::variables_map& vm,
                                const po::positional_options_description* pos) {
  desc.add_options()("vault", po::value<std::string>(),
                     "the vault (required): a directory, or "
                     "rados:POOL[/NAMESPACE] for a Ceph RADOS pool")(
      "ceph-conf", po::value<std::string>(),
      "with a rados: vault: ceph.conf naming the monitors and the keyring "
      "(default: librados' search, $CEPH_CONF, /etc/ceph/ceph.conf)")(
      "ceph-user", po::value<std::string>()->default_value("admin"),
      "with a rados: vault: the Ceph user, without 'client.'")(
      "ceph-op-timeout", po::value<int>()->default_value(30),
      "with a rados: vault: seconds before an op a monitor or OSD does not "
      "answer fails (UNAVAILABLE) instead of waiting")(
      "json", "print machine-readable JSON on stdout")("help,h", "show help");
  if (std::optional<std::string> error =
          common::ParseOptions(args, desc, pos, vm)) {
    std::cerr << "cbt-receiver " << args[0] << ": " << *error << "\n"
              << "Usage: cbt-receiver " << usage << "\n";
    return common::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: cbt-receiver " << usage << "\n\n" << desc;
    return common::kExitOk;
  }
  if (!vm.count("vault")) {
    std::cerr << "cbt-receiver " << args[0]
              << ": --vault DIR (or rados:POOL[/NAMESPACE]) is required\n";
    return common::kExitUsage;
  }
  return std::nullopt;
}

absl::StatusOr<OpenedVault> OpenVaultAt(const po::variables_map& vm,
                                        const std::string& where, bool create,
                                        bool writable) {
  const std::string kRados = "rados:";
  if (where.rfind(kRados, 0) != 0) return OpenLocalVault(where, create);
  const std::string spec = where.substr(kRados.size());
  const size_t slash = spec.find('/');
  const std::string pool = spec.substr(0, slash);
  const std::string ns =
      slash == std::string::npos ? "" : spec.substr(slash + 1);
  if (pool.empty() || (slash != std::string::npos && ns.empty()) ||
      ns.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vault '", where, "': give rados:POOL or rados:POOL/NAMESPACE"));
  }
#ifdef CBTD_RADOS
  RadosStoreOptions options;
  if (vm.count("ceph-conf")) {
    options.conf_path = vm["ceph-conf"].as<std::string>();
  }
  options.client_id = vm["ceph-user"].as<std::string>();
  options.op_timeout_seconds = vm["ceph-op-timeout"].as<int>();
  if (options.op_timeout_seconds <= 0) {
    return absl::InvalidArgumentError("--ceph-op-timeout must be positive");
  }
  options.pool = pool;
  options.ns = ns;
  return OpenRadosVault(options, create, writable);
#else
  (void)vm;
  (void)create;
  (void)writable;
  return absl::FailedPreconditionError(absl::StrCat(
      "vault '", where,
      "': this cbt-receiver was built without RADOS support (CMake option "
      "CBTD_RADOS, which needs librados); use a build with it, or a vault "
      "directory"));
#endif
}

absl::StatusOr<OpenedVault> OpenVault(const po::variables_map& vm, bool create,
                                      bool writable) {
  return OpenVaultAt(vm, vm["vault"].as<std::string>(), create, writable);
}

std::optional<int> CheckNameArgs(const po::variables_map& vm,
                                 std::string_view cmd,
                                 std::initializer_list<const char*> flags) {
  for (const char* flag : flags) {
    if (!vm.count(flag)) continue;
    const std::string what = absl::StrCat("--", flag);
    if (auto s = ValidateName(what, vm[flag].as<std::string>()); !s.ok()) {
      std::cerr << "cbt-receiver " << cmd << ": " << s.message() << "\n";
      return common::kExitUsage;
    }
  }
  return std::nullopt;
}

int ExitCodeFor(const absl::Status& s) { return common::ExitCodeForStatus(s); }

int Fail(const po::variables_map& vm, std::string_view cmd,
         const absl::Status& s) {
  if (vm.count("json")) {
    PrintJson({{"ok", false},
               {"code", absl::StatusCodeToString(s.code())},
               {"error", std::string(s.message())}});
  }
  std::cerr << "cbt-receiver " << cmd << ": " << s.message() << "\n";
  return ExitCodeFor(s);
}

absl::StatusOr<std::optional<transport::TenantKey>> LoadKeyOption(
    const po::variables_map& vm) {
  if (!vm.count("key-file")) return std::optional<transport::TenantKey>();
  auto file = transport::LoadKeyFile(vm["key-file"].as<std::string>());
  if (!file.ok()) return file.status();
  return std::optional<transport::TenantKey>(file->key);
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

}  // namespace cbtd::receiver::cli
