// cbtctl key: the tenant key's operator commands.
#include "cbtctl/key.h"

#include <unistd.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cbtctl/commands.h"
#include "common/cli.h"
#include "nlohmann/json.hpp"
#include "transport/key_file.h"
#include "transport/tenant_key.h"

namespace cbtd::cbtctl {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

constexpr char kUsage[] =
    "Usage: cbtctl key ACTION [--key-file FILE] [--json]\n"
    "\n"
    "  create   make a new random key (never replaces an existing one)\n"
    "  show     the key's fingerprint, creation time and file (not the key)\n"
    "  export   print the key as recovery text, to store offline\n"
    "  import   read recovery text from stdin into a new key file\n"
    "\n"
    "The key seals this host's backups before they leave it. Without it no\n"
    "backup made with it can be restored, by anyone: keep `cbtctl key\n"
    "export`'s text offline. Exit codes: 0 ok, 2 usage, 3 refused (nothing\n"
    "changed), 4 key file damaged, 6 key file not found.\n";

// Recovery text is ~90 characters; refuse to buffer a runaway stdin.
constexpr size_t kMaxRecoveryInput = 64 * 1024;

struct Context {
  std::string key_file;
  bool json = false;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;

  int Fail(const absl::Status& st) const {
    err << "cbtctl key: " << st.message() << "\n";
    return common::ExitCodeForStatus(st);
  }
};

std::string FormatCreated(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

void PrintKey(const Context& c, std::string_view verb,
              const transport::TenantKey& key, int64_t created_unix) {
  if (c.json) {
    c.out << json{{"path", c.key_file},
                  {"fingerprint", key.fingerprint()},
                  {"created", FormatCreated(created_unix)}}
                 .dump(2)
          << "\n";
    return;
  }
  if (!verb.empty()) c.out << verb << " ";
  c.out << "key " << key.fingerprint() << " in " << c.key_file << "\n";
}

constexpr char kBackUpWarning[] =
    "cbtctl key: back this key up now (`cbtctl key export`, stored offline): "
    "without it no backup made with it can be restored, by anyone\n";

int Create(const Context& c) {
  absl::StatusOr<transport::TenantKey> key = transport::TenantKey::Generate();
  if (!key.ok()) return c.Fail(key.status());
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (absl::Status st = transport::CreateKeyFile(c.key_file, *key, now);
      !st.ok()) {
    return c.Fail(st);
  }
  PrintKey(c, "created", *key, now);
  c.err << kBackUpWarning;
  return common::kExitOk;
}

int Show(const Context& c) {
  absl::StatusOr<transport::KeyFile> file = transport::LoadKeyFile(c.key_file);
  if (!file.ok()) return c.Fail(file.status());
  if (c.json) {
    PrintKey(c, "", file->key, file->created_unix);
  } else {
    c.out << "path         " << file->path << "\n"
          << "fingerprint  " << file->key.fingerprint() << "\n"
          << "created      " << FormatCreated(file->created_unix) << "\n";
  }
  return common::kExitOk;
}

int Export(const Context& c) {
  absl::StatusOr<transport::KeyFile> file = transport::LoadKeyFile(c.key_file);
  if (!file.ok()) return c.Fail(file.status());
  c.err << "cbtctl key: this text IS the key of " << c.key_file
        << ": store it offline (paper, password manager), never next to the "
           "backups\n";
  if (c.json) {
    c.out << json{{"fingerprint", file->key.fingerprint()},
                  {"recovery_text", file->key.ToRecoveryText()}}
                 .dump(2)
          << "\n";
  } else {
    c.out << file->key.ToRecoveryText() << "\n";
  }
  return common::kExitOk;
}

int Import(const Context& c) {
  std::string text;
  char ch;
  while (text.size() <= kMaxRecoveryInput && c.in.get(ch)) text += ch;
  if (text.size() > kMaxRecoveryInput) {
    return c.Fail(absl::InvalidArgumentError(
        "stdin is far longer than recovery text; pipe only the cbtd1-... "
        "text in"));
  }
  absl::StatusOr<transport::TenantKey> key =
      transport::TenantKey::FromRecoveryText(text);
  if (!key.ok()) return c.Fail(key.status());
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  if (absl::Status st = transport::CreateKeyFile(c.key_file, *key, now);
      !st.ok()) {
    return c.Fail(st);
  }
  PrintKey(c, "imported", *key, now);
  return common::kExitOk;
}

}  // namespace

int RunKey(std::span<char*> args, std::istream& in, std::ostream& out,
           std::ostream& err) {
  if (args.size() < 2 || std::string_view(args[1]) == "--help" ||
      std::string_view(args[1]) == "-h") {
    (args.size() < 2 ? err : out) << kUsage;
    return args.size() < 2 ? common::kExitUsage : common::kExitOk;
  }
  const std::string action = args[1];
  Context c{"", false, in, out, err};
  po::options_description desc("Options");
  desc.add_options()(
      "key-file",
      po::value<std::string>(&c.key_file)
          ->default_value(std::string(transport::kDefaultKeyFile)),
      "the key file")("json", po::bool_switch(&c.json),
                      "print JSON for scripts")("help,h", "show this help");
  po::variables_map vm;
  // args[1], the action, stands in for argv[0].
  if (std::optional<std::string> error =
          common::ParseOptions(args.subspan(1), desc, nullptr, vm)) {
    err << "cbtctl key " << action << ": " << *error << "\n" << kUsage;
    return common::kExitUsage;
  }
  if (vm.count("help")) {
    out << kUsage << "\n" << desc << "\n";
    return common::kExitOk;
  }
  if (action == "create") return Create(c);
  if (action == "show") return Show(c);
  if (action == "export") return Export(c);
  if (action == "import") return Import(c);
  err << "cbtctl key: unknown action '" << action << "'\n" << kUsage;
  return common::kExitUsage;
}

int RunKeyCommand(std::span<char*> args) {
  if (args.size() >= 2 && std::string_view(args[1]) == "import" &&
      ::isatty(STDIN_FILENO)) {
    std::cerr << "Type or paste the recovery text (cbtd1-...), then Ctrl-D:\n";
  }
  return RunKey(args, std::cin, std::cout, std::cerr);
}

}  // namespace cbtd::cbtctl
