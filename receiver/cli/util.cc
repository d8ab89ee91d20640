#include "receiver/cli/util.h"

#include "transport/key_file.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/cli.h"

namespace cbtd::receiver::cli {

std::optional<int> ParseCommand(std::span<char*> args, std::string_view usage,
                                po::options_description& desc,
                                po::variables_map& vm,
                                const po::positional_options_description* pos) {
  desc.add_options()("vault", po::value<std::string>(),
                     "vault directory (required)")(
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
    std::cerr << "cbt-receiver " << args[0] << ": --vault DIR is required\n";
    return common::kExitUsage;
  }
  return std::nullopt;
}

absl::StatusOr<OpenedVault> OpenVault(const po::variables_map& vm,
                                      bool create) {
  return OpenLocalVault(vm["vault"].as<std::string>(), create);
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
