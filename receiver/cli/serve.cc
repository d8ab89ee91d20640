// cbt-receiver serve: the network receiver. Serves the vault over gRPC with
// mutual TLS (docs/transport.md) until SIGTERM or SIGINT. As a systemd
// service (docs/operations.md, "Running the receiver as a service"): READY=1
// once the vault is open and the port listens, WATCHDOG=1 at a third of
// WatchdogSec, STATUS= lines, STOPPING=1; Prometheus metrics in a textfile;
// an audit line per session, commit, prune, GC and verify; scheduled GC and
// verify.
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/cli.h"
#include "common/fs.h"
#include "common/prometheus.h"
#include "common/units.h"
#include "receiver/cli/metrics_http.h"
#include "receiver/cli/util.h"
#include "receiver/maintenance.h"
#include "receiver/observed_backend.h"
#include "receiver/service_metrics.h"
#include "receiver/vault_service_backend.h"
#include "transport/grpc_server.h"

namespace cbtd::receiver::cli {
namespace {

absl::StatusOr<std::string> ReadPem(const po::variables_map& vm,
                                    const char* flag) {
  if (!vm.count(flag)) return std::string();
  return common::ReadFile(vm[flag].as<std::string>());
}

// Audit lines to stderr, whole lines under a lock (sessions end on gRPC
// threads); the <N> prefix is the syslog priority journald reads from a
// service's stderr (sd-daemon.h): notice for what went as asked, warning
// for what did not.
void WriteAudit(const std::string& line, bool ok) {
  static std::mutex mu;
  const std::string out =
      absl::StrCat(ok ? SD_NOTICE : SD_WARNING, "cbt-receiver: ", line, "\n");
  std::lock_guard lock(mu);
  std::cerr << out << std::flush;
}

absl::StatusOr<absl::Duration> DurationOption(const po::variables_map& vm,
                                              const char* flag) {
  if (!vm.count(flag)) return absl::ZeroDuration();
  auto d = common::ParseDurationSpec(vm[flag].as<std::string>());
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", vm[flag].as<std::string>(),
                     "': ", d.status().message(), " (e.g. 30m, 6h, 1d)"));
  }
  return *d;
}

// The main loop's tick: a third of the watchdog interval when systemd set
// one, at most 5 s (STATUS= stays current) and at most the metrics period.
absl::Duration LoopPeriod(absl::Duration metrics_every) {
  uint64_t watchdog_usec = 0;
  absl::Duration period = std::min(metrics_every, absl::Seconds(5));
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    period = std::min(
        period, absl::Microseconds(static_cast<int64_t>(watchdog_usec)) / 3);
  }
  return period;
}

// Everything after the vault is open: serves until SIGTERM or SIGINT.
class Service {
 public:
  Service(const po::variables_map& vm, OpenedVault& opened,
          transport::ReceiverServer& server, ServiceMetrics& metrics,
          MaintenanceScheduler& scheduler, std::string metrics_file)
      : vm_(vm),
        opened_(opened),
        server_(server),
        metrics_(metrics),
        scheduler_(scheduler),
        metrics_file_(std::move(metrics_file)) {}

  void WriteMetrics() {
    if (metrics_file_.empty()) return;
    absl::Status s = common::WritePrometheusTextfile(
        metrics_file_, metrics_.Render(server_.open_sessions(), absl::Now()));
    if (!s.ok()) {
      std::cerr << SD_WARNING << "cbt-receiver: metrics: " << s.message()
                << " (check --metrics-textfile's directory and its "
                   "permissions)"
                << std::endl;
    }
  }

  std::string StatusLine() {
    std::string line =
        absl::StrCat(server_.open_sessions(), " session(s) open");
    if (std::string m = scheduler_.last_status(); !m.empty()) {
      absl::StrAppend(&line, "; last ", m);
    }
    return line;
  }

  // --metrics-listen, if given.
  absl::Status StartMetricsHttp() {
    if (!vm_.count("metrics-listen")) return absl::OkStatus();
    const std::string address = vm_["metrics-listen"].as<std::string>();
    auto started = MetricsHttpServer::Start(address, [this] {
      return metrics_.Render(server_.open_sessions(), absl::Now());
    });
    if (!started.ok()) return started.status();
    metrics_http_ = *std::move(started);
    std::cout << "cbt-receiver: metrics on HTTP port " << metrics_http_->port()
              << " (" << address << ", GET /metrics)" << std::endl;
    return absl::OkStatus();
  }

  // Announces readiness, pings the watchdog and rewrites the metrics until
  // a signal of `stop` arrives, then stops. Returns the exit code.
  int Run(const sigset_t& stop, absl::Duration metrics_every,
          const std::string& listen) {
    WriteMetrics();
    std::cout << "cbt-receiver serving " << vm_["vault"].as<std::string>()
              << " on " << listen << " (port " << server_.port()
              << (vm_.count("insecure") ? ", INSECURE plaintext"
                                        : ", mutual TLS")
              << ")"
              << (opened_.vault->format() == 1
                      ? "; the vault has the first format: read-only, "
                        "receives are refused (see `cbt-receiver migrate`)"
                      : "")
              << std::endl;
    // Ready only now: the vault is open and the port accepts connections.
    sd_notify(0, absl::StrCat("READY=1\nSTATUS=", StatusLine()).c_str());
    const timespec tick = absl::ToTimespec(LoopPeriod(metrics_every));
    absl::Time last_metrics = absl::Now();
    int sig = 0;
    for (;;) {
      sig = sigtimedwait(&stop, nullptr, &tick);
      if (sig == SIGTERM || sig == SIGINT) break;
      sd_notify(0, absl::StrCat("WATCHDOG=1\nSTATUS=", StatusLine()).c_str());
      if (absl::Now() - last_metrics >= metrics_every) {
        last_metrics = absl::Now();
        WriteMetrics();
      }
    }
    return Stop(sig);
  }

 private:
  int Stop(int sig) {
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: aborting open sessions");
    std::cout << "cbt-receiver: signal " << sig
              << ", stopping (open sessions are aborted)" << std::endl;
    scheduler_.RequestStop();
    server_.Shutdown();
    WriteMetrics();
    if (scheduler_.busy()) {
      // A verify can take hours: not worth holding the stop for. GC and
      // verify end safely anywhere (receiver/gc.h); the next start's
      // schedule runs them again.
      std::cout << "cbt-receiver: a scheduled GC or verify was running; it "
                   "ends with the process and runs again on schedule"
                << std::endl;
      std::_Exit(common::kExitOk);
    }
    scheduler_.Stop();
    return common::kExitOk;
  }

  const po::variables_map& vm_;
  OpenedVault& opened_;
  transport::ReceiverServer& server_;
  ServiceMetrics& metrics_;
  MaintenanceScheduler& scheduler_;
  const std::string metrics_file_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
};

po::options_description ServeOptions() {
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
      "'admin')")("create",
                  "create the vault (a directory, or one in the RADOS "
                  "namespace) if there is none")(
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
      "seconds an interrupted session waits for its sender to resume")(
      "metrics-textfile", po::value<std::string>(),
      "write Prometheus metrics to this file (atomically, mode 0644, every "
      "--metrics-every and at exit) for node_exporter's textfile collector; "
      "the unit uses /run/cbt-receiver/cbt-receiver.prom")(
      "metrics-every", po::value<std::string>()->default_value("15s"),
      "how often the metrics file is rewritten")(
      "metrics-listen", po::value<std::string>(),
      "serve the same metrics on HTTP GET /metrics at ADDR: PORT "
      "(127.0.0.1), HOST:PORT or [V6]:PORT; plain HTTP without "
      "authentication, keep it on loopback or behind a firewall")(
      "gc-every", po::value<std::string>(),
      "run GC every DURATION (e.g. 1d), in the background, alongside "
      "receives (a format-1 vault: skipped while one runs); the first run "
      "one interval after start")(
      "gc-grace", po::value<std::string>()->default_value("1h"),
      "scheduled GC spares what is younger than this")(
      "verify-every", po::value<std::string>(),
      "verify the whole vault every DURATION (e.g. 7d), in the background; "
      "never at the same time as the scheduled GC; sealed chunks are checked "
      "by checksum (the receiver has no keys)");
  return desc;
}

// The gRPC server's settings from the command line (TLS material read).
absl::StatusOr<transport::ServerOptions> ServerOptionsFrom(
    const po::variables_map& vm) {
  transport::ServerOptions o;
  o.listen_address = vm["listen"].as<std::string>();
  o.insecure = vm.count("insecure") > 0;
  for (auto [flag, field] : {std::pair{"tls-cert", &o.tls_cert_pem},
                             std::pair{"tls-key", &o.tls_key_pem},
                             std::pair{"client-ca", &o.client_ca_pem}}) {
    auto pem = ReadPem(vm, flag);
    if (!pem.ok()) return pem.status();
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
  return o;
}

// --gc-every, --gc-grace, --verify-every.
absl::StatusOr<MaintenanceOptions> MaintenanceFrom(
    const po::variables_map& vm) {
  MaintenanceOptions maintenance;
  for (auto [flag, field] :
       {std::pair{"gc-every", &maintenance.gc_every},
        std::pair{"verify-every", &maintenance.verify_every}}) {
    auto d = DurationOption(vm, flag);
    if (!d.ok()) return d.status();
    *field = *d;
  }
  auto grace = DurationOption(vm, "gc-grace");
  if (!grace.ok()) return grace.status();
  maintenance.gc.grace_ms = absl::ToInt64Milliseconds(*grace);
  return maintenance;
}

}  // namespace

int RunServe(std::span<char*> args) {
  po::options_description desc = ServeOptions();
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
  if (!vm.count("insecure") && (!vm.count("tls-cert") || !vm.count("tls-key") ||
                                !vm.count("client-ca"))) {
    std::cerr << "cbt-receiver serve: give --tls-cert, --tls-key and "
                 "--client-ca (scripts/make-certs.sh creates them), or "
                 "--insecure on a loopback address\n";
    return common::kExitUsage;
  }
  auto o = ServerOptionsFrom(vm);
  if (!o.ok()) return Fail(vm, "serve", o.status());
  auto maintenance = MaintenanceFrom(vm);
  if (!maintenance.ok()) return Fail(vm, "serve", maintenance.status());
  auto metrics_every = DurationOption(vm, "metrics-every");
  if (!metrics_every.ok()) return Fail(vm, "serve", metrics_every.status());

  auto opened = OpenVault(vm, vm.count("create") > 0, /*writable=*/true);
  if (!opened.ok()) return Fail(vm, "serve", opened.status());
  VaultServiceBackend vault_backend(*opened->vault);
  ServiceMetrics metrics;
  ObservedBackend backend(vault_backend, metrics, WriteAudit);

  // Block the stop signals before gRPC, the scheduler and the metrics
  // server start their threads, so only the loop's sigtimedwait receives
  // them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = transport::ReceiverServer::Start(&backend, *o);
  if (!server.ok()) return Fail(vm, "serve", server.status());
  MaintenanceScheduler scheduler(*opened->vault, *maintenance, metrics,
                                 WriteAudit);
  scheduler.Start();
  Service service(vm, *opened, **server, metrics, scheduler,
                  vm.count("metrics-textfile")
                      ? vm["metrics-textfile"].as<std::string>()
                      : "");
  if (auto s = service.StartMetricsHttp(); !s.ok()) {
    return Fail(vm, "serve", s);
  }
  return service.Run(stop, *metrics_every, o->listen_address);
}

}  // namespace cbtd::receiver::cli
