// cbtctl export / exports: a stored version served as an NBD export, read
// on demand from the receiver (nbd/exports.h). Through cbtd by default (its
// config: receiver, TLS identity, key file); with --local without it, the
// export reading cbtd.conf itself, so it works while cbtd is stopped or
// being repaired. Listing and stopping work on the records either way.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cbtctl/commands.h"
#include "common/cli.h"
#include "common/units.h"
#include "control/control_client.h"
#include "nbd/exports.h"
#include "nlohmann/json.hpp"

namespace cbtd::cbtctl {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

constexpr char kExportUsage[] =
    "Usage: cbtctl export VOLUME --version ID [--unix PATH | --tcp "
    "ADDR:PORT]\n"
    "                     [--writable] [--lifetime 8h] [--name NAME] "
    "[--local]\n"
    "       cbtctl export --stop NAME\n"
    "\n"
    "Serves a stored version as an NBD export, reading its chunks from the\n"
    "receiver on demand (nothing is restored first). Read-only unless\n"
    "--writable: then writes go to a local overlay, never to the vault, and\n"
    "are discarded when the export stops. Started through cbtd (its config)\n"
    "unless --local. Attach it with e.g.\n"
    "  nbd-client -unix SOCKET /dev/nbd0     or     qemu-img/qemu-nbd/nbdcopy\n"
    "Exit codes: 0 ok, 2 usage, 3 refused, 5 receiver unreachable, 6 not "
    "found.\n";

std::string FormatTime(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

json ToJson(const nbd::ExportRecord& r) {
  return json{{"name", r.name},
              {"volume", r.volume},
              {"version", r.version},
              {"host", r.host},
              {"uri", r.uri},
              {"writable", r.writable},
              {"pid", r.pid},
              {"owner_uid", r.owner_uid},
              {"created", FormatTime(r.created_unix)},
              {"expires", r.expires_unix ? FormatTime(r.expires_unix) : ""}};
}

int Fail(const char* what, const absl::Status& s) {
  std::cerr << "cbtctl " << what << ": " << s.message() << "\n";
  return common::ExitCodeForStatus(s);
}

}  // namespace

namespace {

nbd::ExportRecord RecordOf(const control::ExportInfo& e) {
  nbd::ExportRecord r;
  r.name = e.name();
  r.volume = e.volume();
  r.version = e.version();
  r.host = e.host();
  r.uri = e.uri();
  r.writable = e.writable();
  r.pid = static_cast<int>(e.pid());
  r.owner_uid = e.owner_uid();
  r.created_unix = e.created_unix();
  r.expires_unix = e.expires_unix();
  return r;
}

// Through cbtd: its config, its receiver and key.
absl::StatusOr<nbd::ExportRecord> ExportThroughDaemon(
    const std::string& socket, const nbd::ExportSpec& spec) {
  control::ExportRequest request;
  request.set_volume(spec.volume);
  request.set_version(spec.version);
  request.set_name(spec.name);
  request.set_unix_socket(spec.unix_socket);
  request.set_tcp_address(spec.tcp_address);
  request.set_writable(spec.writable);
  request.set_lifetime_seconds(spec.lifetime.count());
  request.set_cache_mib(spec.cache_mib);
  request.set_host(spec.host);
  request.set_owner_uid(nbd::CallerUid());
  control::ControlClient client(socket);
  absl::StatusOr<control::ExportInfo> info = client.Export(request);
  if (absl::IsUnavailable(info.status())) {
    return absl::UnavailableError(absl::StrCat(
        info.status().message(),
        " (to export without cbtd: cbtctl export --local, which reads "
        "/etc/cbtd/cbtd.conf or --config)"));
  }
  if (!info.ok()) return info.status();
  return RecordOf(*info);
}

void PrintExported(const nbd::ExportRecord& r, bool json_out) {
  if (json_out) {
    std::cout << ToJson(r).dump(2) << "\n";
    return;
  }
  std::cout << "exported " << r.volume << "@" << r.version << " as '" << r.name
            << "'" << (r.writable ? " (writable overlay)" : "") << ": " << r.uri
            << "\n"
            << "stop it with: cbtctl export --stop " << r.name << "\n";
}

}  // namespace

int RunExportCommand(std::span<char*> args) {
  nbd::ExportSpec spec;
  nbd::ExportPaths paths;
  std::string lifetime, stop, socket;
  bool json_out = false;
  bool local = false;
  po::options_description desc("Options");
  desc.add_options()("help,h", "show this help")(
      "volume", po::value<std::string>(&spec.volume),
      "the volume (first argument)")(
      "version", po::value<std::string>(&spec.version),
      "the version to serve ('cbtctl versions VOLUME')")(
      "unix", po::value<std::string>(&spec.unix_socket),
      "listen on this unix socket (default: nbd.sock in the export's "
      "directory, /run/cbtd/exports/NAME/)")(
      "tcp", po::value<std::string>(&spec.tcp_address),
      "listen on ADDR:PORT instead; NBD has no authentication here: bind "
      "to an address only trusted peers reach")(
      "writable", po::bool_switch(&spec.writable),
      "accept writes into a local overlay (never the vault), discarded when "
      "the export stops")(
      "lifetime", po::value<std::string>(&lifetime),
      "stop the export after this long, e.g. 30m or 8h (default: until "
      "--stop)")("name", po::value<std::string>(&spec.name),
                 "the export's name (default VOLUME-VERSION)")(
      "host", po::value<std::string>(&spec.host),
      "another host's version (the receiver requires an admin identity)")(
      "cache-mib", po::value<uint64_t>(&spec.cache_mib)->default_value(64),
      "chunk cache of the export, MiB")(
      "local", po::bool_switch(&local),
      "start the export here, without cbtd (it reads --config itself); "
      "such an export outlives cbtd's restarts")(
      "config",
      po::value<std::string>(&spec.config_path)
          ->default_value("/etc/cbtd/cbtd.conf"),
      "with --local: cbtd's config (the receiver, this host's TLS identity, "
      "the key file)")(
      "run-dir",
      po::value<std::string>(&paths.run_dir)
          ->default_value(nbd::kDefaultRunDir),
      "with --local or --stop: where exports keep their records, sockets "
      "and overlays")("socket",
                      po::value<std::string>(&socket)->default_value(
                          control::kDefaultSocketPath),
                      "cbtd's control socket")(
      "stop", po::value<std::string>(&stop), "stop the export NAME")(
      "json", po::bool_switch(&json_out), "print the export as JSON");
  po::positional_options_description positional;
  positional.add("volume", 1);
  po::variables_map vm;
  if (std::optional<std::string> error =
          common::ParseOptions(args, desc, &positional, vm)) {
    std::cerr << "cbtctl export: " << *error << "\n" << kExportUsage;
    return common::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << kExportUsage << "\n" << desc << "\n";
    return common::kExitOk;
  }
  if (!stop.empty()) {
    if (absl::Status s = nbd::StopExport(paths.run_dir, stop); !s.ok()) {
      return Fail("export --stop", s);
    }
    std::cout << "stopped export " << stop << "\n";
    return common::kExitOk;
  }
  if (spec.volume.empty() || spec.version.empty()) {
    std::cerr << "cbtctl export: give a VOLUME and --version\n" << kExportUsage;
    return common::kExitUsage;
  }
  if (!lifetime.empty()) {
    auto d = common::ParseDurationSpec(lifetime);
    if (!d.ok()) {
      std::cerr << "cbtctl export: --lifetime: " << d.status().message()
                << "\n";
      return common::kExitUsage;
    }
    spec.lifetime = std::chrono::seconds(absl::ToInt64Seconds(*d));
  }
  if (!spec.unix_socket.empty()) {
    spec.unix_socket = std::filesystem::absolute(spec.unix_socket).string();
  }
  absl::StatusOr<nbd::ExportRecord> r;
  if (local) {
    spec.config_path = std::filesystem::absolute(spec.config_path).string();
    paths.run_dir = std::filesystem::absolute(paths.run_dir).string();
    paths.plugin = nbd::DefaultPluginPath();
    r = nbd::StartExport(paths, spec);
  } else {
    r = ExportThroughDaemon(socket, spec);
  }
  if (!r.ok()) return Fail("export", r.status());
  PrintExported(*r, json_out);
  return common::kExitOk;
}

int RunExportsCommand(std::span<char*> args) {
  std::string run_dir;
  bool json_out = false;
  po::options_description desc("Options");
  desc.add_options()("help,h", "show this help")(
      "run-dir",
      po::value<std::string>(&run_dir)->default_value(nbd::kDefaultRunDir),
      "where exports keep their records")("json", po::bool_switch(&json_out),
                                          "print JSON");
  po::variables_map vm;
  if (std::optional<std::string> error =
          common::ParseOptions(args, desc, nullptr, vm)) {
    std::cerr << "cbtctl exports: " << *error << "\n";
    return common::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "Usage: cbtctl exports [--json]\n\n" << desc << "\n";
    return common::kExitOk;
  }
  auto list = nbd::ListExports(run_dir);
  if (!list.ok()) return Fail("exports", list.status());
  if (json_out) {
    json out = json::array();
    for (const nbd::ExportRecord& r : *list) out.push_back(ToJson(r));
    std::cout << out.dump(2) << "\n";
    return common::kExitOk;
  }
  if (list->empty()) {
    std::cout << "no exports\n";
    return common::kExitOk;
  }
  for (const nbd::ExportRecord& r : *list) {
    std::cout << r.name << "  " << r.volume << "@" << r.version
              << (r.writable ? "  writable" : "  read-only") << "  " << r.uri
              << "  owner uid " << r.owner_uid << "  since "
              << FormatTime(r.created_unix)
              << (r.expires_unix ? "  until " + FormatTime(r.expires_unix) : "")
              << "\n";
  }
  return common::kExitOk;
}

}  // namespace cbtd::cbtctl
