#include "cbtctl/send_remote.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/fs.h"
#include "common/units.h"
#include "transport/grpc_client.h"
#include "transport/index_file.h"
#include "transport/tls_identity.h"

namespace cbtd::cbtctl {
namespace {

namespace po = boost::program_options;

int ExitFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return common::kExitRefused;
    case absl::StatusCode::kUnavailable:
      return common::kExitUnavailable;
    case absl::StatusCode::kNotFound:
      return common::kExitNotFound;  // e.g. --base-version unknown
    default:
      return common::kExitFailure;
  }
}

int Fail(const absl::Status& s) {
  std::cerr << "cbtctl send: " << s.message() << "\n";
  return ExitFor(s);
}

std::string Mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  return buf;
}

}  // namespace

void AddRemoteSendOptions(po::options_description& desc) {
  desc.add_options()("to", po::value<std::string>(),
                     "send to cbt-receiver serve at HOST:PORT")(
      "tls-cert", po::value<std::string>(),
      "client certificate (PEM); its CN is this host's identity")(
      "tls-key", po::value<std::string>(), "client private key (PEM)")(
      "ca", po::value<std::string>(), "CA that signed the receiver (PEM)")(
      "server-name", po::value<std::string>(),
      "name expected in the receiver's certificate, if not the --to host")(
      "insecure", "plaintext to a receiver running --insecure on loopback")(
      "base-version", po::value<std::string>(),
      "incremental on this version, its index fetched from the receiver")(
      "bwlimit", po::value<std::string>(),
      "payload bandwidth limit, BYTES[K|M|G] per second")(
      "retries", po::value<int>()->default_value(5),
      "restarts of the run if the receiver lost the session; 0: no retry at "
      "all (no reconnect either, fail at the first network error)")(
      "no-progress", "no progress line on a terminal");
}

int RunRemoteSend(const po::variables_map& vm, common::BlockReader& source,
                  const cbt::ExtentSet& changed, const cbt::ExtentSet& zeroed,
                  const transport::IndexMetadata* base,
                  transport::ProducerOptions opts) {
  transport::ClientOptions co;
  co.target = vm["to"].as<std::string>();
  co.insecure = vm.count("insecure") > 0;
  if (!co.insecure) {
    for (auto [flag, field] :
         {std::pair{"tls-cert", &co.cert_pem},
          std::pair{"tls-key", &co.key_pem}, std::pair{"ca", &co.ca_pem}}) {
      if (!vm.count(flag)) {
        std::cerr << "cbtctl send: --to needs --tls-cert, --tls-key and --ca "
                     "(or --insecure against a loopback receiver)\n";
        return common::kExitUsage;
      }
      auto pem = common::ReadFile(vm[flag].as<std::string>());
      if (!pem.ok()) return Fail(pem.status());
      *field = std::move(*pem);
    }
    // The receiver files our backups under our certificate's CN.
    auto cn = transport::CertificateCommonName(co.cert_pem);
    if (!cn.ok()) return Fail(cn.status());
    if (!vm.count("host") && !base) opts.host = *cn;
    if (opts.host != *cn) {
      std::cerr << "cbtctl send: host '" << opts.host
                << "' differs from the certificate's identity '" << *cn
                << "'; the receiver would refuse it\n";
      return common::kExitUsage;
    }
  }
  co.insecure_identity = opts.host;
  if (vm.count("server-name")) {
    co.server_name_override = vm["server-name"].as<std::string>();
  }
  if (vm.count("bwlimit")) {
    // Bytes per second: "10M" is 10 MiB/s (binary multiples, units.h).
    auto rate = common::ParseBytes(vm["bwlimit"].as<std::string>());
    if (!rate.ok()) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--bwlimit: ", std::string(rate.status().message()))));
    }
    co.bwlimit_bytes_per_sec = *rate;
  }
  const bool bar = !vm.count("no-progress") && ::isatty(2);
  if (bar) {
    co.on_progress = [](const transport::SendProgress& p) {
      std::cerr << "\r"
                << "read " << Mib(p.bytes_read) << ", sent "
                << Mib(p.bytes_sent) << ", skipped " << Mib(p.bytes_skipped)
                << ", " << Mib(static_cast<uint64_t>(p.rate_bytes_per_sec))
                << "/s" << (p.reconnects ? " (reconnected)" : "") << "   "
                << std::flush;
    };
  }
  const int retries = vm["retries"].as<int>();
  if (retries < 0) {
    std::cerr << "cbtctl send: --retries must not be negative\n";
    return common::kExitUsage;
  }
  // No retry means none: neither reconnecting within a run nor a new run.
  if (retries == 0) co.retry_budget = std::chrono::milliseconds(0);
  auto client = transport::RemoteClient::Create(co);
  if (!client.ok()) return Fail(client.status());

  // The base, read once per attempt and streamed (bounded memory at any
  // volume size): --base-index from its file, --base-version from the
  // receiver.
  std::string base_id = base ? base->version_id : "";
  if (vm.count("base-version")) {
    if (!vm.count("full") && !vm.count("changes") && !vm.count("discards")) {
      std::cerr << "cbtctl send: with --base-version, give --changes (and/or "
                   "--discards) or --full (read everything)\n";
      return common::kExitUsage;
    }
    if (base) {
      std::cerr << "cbtctl send: give --base-index or --base-version, not "
                   "both\n";
      return common::kExitUsage;
    }
    base_id = vm["base-version"].as<std::string>();
  }
  auto open_base =
      [&]() -> absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>> {
    if (base)
      return transport::OpenIndexFile(vm["base-index"].as<std::string>());
    if (base_id.empty()) return nullptr;
    return (*client)->OpenIndex("", opts.volume, base_id);
  };

  auto delay = std::chrono::seconds(1);
  for (int attempt = 0;; ++attempt) {
    auto base_entries = open_base();
    if (!base_entries.ok()) return Fail(base_entries.status());
    auto sink = (*client)->NewSink();
    auto result = transport::ProduceStream(source, changed, zeroed,
                                           base_entries->get(), opts, *sink);
    if (bar) std::cerr << "\n";
    if (result.ok()) {
      const auto p = sink->progress();
      std::cerr << "committed " << opts.host << "/" << opts.volume << "@"
                << opts.version_id
                << (base_id.empty() ? "" : " based on " + base_id) << " at "
                << co.target << ": read " << Mib(p.bytes_read) << ", sent "
                << Mib(p.bytes_sent) << " (" << Mib(p.payload_bytes_sent)
                << " on the wire), skipped " << Mib(p.bytes_skipped) << "; "
                << p.reconnects << " reconnects; root "
                << result->root_hash.ToHex() << "\n";
      return common::kExitOk;
    }
    // Only a lost session (receiver restarted, session expired) or an
    // unreachable receiver is worth a new run; refusals are final.
    if (result.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= retries) {
      return Fail(result.status());
    }
    std::cerr << "cbtctl send: " << result.status().message()
              << "; starting again in " << delay.count() << " s\n";
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::seconds(30));
  }
}

}  // namespace cbtd::cbtctl
