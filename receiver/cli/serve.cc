// cbt-receiver serve: the network receiver. Serves the vault over gRPC with
// mutual TLS (docs/transport.md) until SIGTERM or SIGINT.
#include <signal.h>

#include <chrono>
#include <iostream>

#include "common/cli.h"
#include "common/fs.h"
#include "receiver/cli/util.h"
#include "receiver/vault_service_backend.h"
#include "transport/grpc_server.h"

namespace cbtd::receiver::cli {
namespace {

absl::StatusOr<std::string> ReadPem(const po::variables_map& vm,
                                    const char* flag) {
  if (!vm.count(flag)) return std::string();
  return common::ReadFile(vm[flag].as<std::string>());
}

}  // namespace

int RunServe(std::span<char*> args) {
  po::options_description desc("Options");
  desc.add_options()("listen", po::value<std::string>(),
                     "address to serve on, e.g. 0.0.0.0:7443 or [::]:7443")(
      "tls-cert", po::value<std::string>(), "server certificate (PEM)")(
      "tls-key", po::value<std::string>(), "server private key (PEM)")(
      "client-ca", po::value<std::string>(),
      "CA that signs client certificates (PEM); clients are identified by "
      "their certificate's CN")(
      "insecure", "plaintext, no authentication; loopback addresses only")(
      "admin", po::value<std::vector<std::string>>(),
      "identity that may read every host's versions (repeatable; default "
      "'admin')")("create", "create the vault directory if it does not exist")(
      "max-sessions", po::value<int>()->default_value(64),
      "open sessions (streaming or awaiting resume) across all hosts")(
      "max-rpcs", po::value<int>()->default_value(128),
      "concurrent calls being served")("window",
                                       po::value<uint32_t>()->default_value(32),
                                       "records a sender may have in flight")(
      "max-message-bytes", po::value<uint32_t>()->default_value(16u << 20),
      "largest request accepted")(
      "idle-timeout", po::value<int>()->default_value(60),
      "seconds before a silent stream is cut (its session stays resumable)")(
      "resume-ttl", po::value<int>()->default_value(600),
      "seconds an interrupted session waits for its sender to resume");
  po::variables_map vm;
  if (auto rc = ParseCommand(args,
                             "serve --vault DIR --listen ADDR --tls-cert FILE "
                             "--tls-key FILE --client-ca FILE | --insecure",
                             desc, vm)) {
    return *rc;
  }
  if (!vm.count("listen")) {
    std::cerr << "cbt-receiver serve: --listen ADDR is required\n";
    return common::kExitUsage;
  }
  transport::ServerOptions o;
  o.listen_address = vm["listen"].as<std::string>();
  o.insecure = vm.count("insecure") > 0;
  if (!o.insecure && (!vm.count("tls-cert") || !vm.count("tls-key") ||
                      !vm.count("client-ca"))) {
    std::cerr << "cbt-receiver serve: give --tls-cert, --tls-key and "
                 "--client-ca (scripts/make-certs.sh creates them), or "
                 "--insecure on a loopback address\n";
    return common::kExitUsage;
  }
  for (auto [flag, field] : {std::pair{"tls-cert", &o.tls_cert_pem},
                             std::pair{"tls-key", &o.tls_key_pem},
                             std::pair{"client-ca", &o.client_ca_pem}}) {
    auto pem = ReadPem(vm, flag);
    if (!pem.ok()) return Fail(vm, "serve", pem.status());
    *field = std::move(*pem);
  }
  if (vm.count("admin")) {
    o.admin_identities = vm["admin"].as<std::vector<std::string>>();
  }
  o.max_sessions = vm["max-sessions"].as<int>();
  o.max_concurrent_rpcs = vm["max-rpcs"].as<int>();
  o.window_records = vm["window"].as<uint32_t>();
  o.max_message_bytes = vm["max-message-bytes"].as<uint32_t>();
  o.idle_timeout = std::chrono::seconds(vm["idle-timeout"].as<int>());
  o.resume_ttl = std::chrono::seconds(vm["resume-ttl"].as<int>());

  auto opened = OpenVault(vm, vm.count("create") > 0);
  if (!opened.ok()) return Fail(vm, "serve", opened.status());
  VaultServiceBackend backend(*opened->vault);

  // Block the stop signals before gRPC starts its threads, so only the
  // sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = transport::ReceiverServer::Start(&backend, o);
  if (!server.ok()) return Fail(vm, "serve", server.status());
  std::cout << "cbt-receiver serving " << vm["vault"].as<std::string>()
            << " on " << o.listen_address << " (port " << (*server)->port()
            << (o.insecure ? ", INSECURE plaintext" : ", mutual TLS") << ")"
            << (opened->vault->format() == 1
                    ? "; the vault has the first format: read-only, receives "
                      "are refused (see `cbt-receiver migrate`)"
                    : "")
            << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  std::cout << "cbt-receiver: signal " << sig
            << ", stopping (open sessions are aborted)" << std::endl;
  (*server)->Shutdown();
  return common::kExitOk;
}

}  // namespace cbtd::receiver::cli
