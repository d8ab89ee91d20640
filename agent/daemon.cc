#include "agent/daemon.h"

#include <signal.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/control_service.h"
#include "agent/linux_config_probe.h"
#include "agent/metrics.h"
#include "agent/run_journal.h"
#include "common/cli.h"

namespace cbtd::agent {
namespace {

// Logs go to stderr, which systemd sends to the journal; the <N> prefix is
// the syslog priority journald reads (sd-daemon.h).
void Log(const char* priority, const std::string& message) {
  std::cerr << priority << "cbtd: " << message << std::endl;
}

// A run's structured entry (run_journal.h) to the journal; its MESSAGE to
// stderr when there is no journal to take it (a VM, a container).
void JournalRun(const RunRecord& run) {
  JournalEntry e = RunJournalEntry(run);
  e.fields.push_back("SYSLOG_IDENTIFIER=cbtd");
  // sd_journal_sendv reports success when journald is not there at all
  // (ENOENT on its socket), so look first.
  static const bool journal =
      ::access("/run/systemd/journal/socket", F_OK) == 0;
  std::vector<iovec> iov;
  for (std::string& f : e.fields) iov.push_back({f.data(), f.size()});
  if (journal &&
      sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0) {
    return;
  }
  std::cerr << "<" << e.priority
            << ">cbtd: " << e.fields.front().substr(sizeof("MESSAGE=") - 1)
            << std::endl;
}

absl::Duration LoopPeriod() {
  // Ping the watchdog at a third of its interval; tick at least every 5 s.
  uint64_t watchdog_usec = 0;
  absl::Duration period = absl::Seconds(5);
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    period = std::min(
        period, absl::Microseconds(static_cast<int64_t>(watchdog_usec)) / 3);
  }
  return period;
}

}  // namespace

int CheckConfigCommand(const std::string& path) {
  absl::StatusOr<Config> config = LoadConfig(path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return common::kExitUsage;
  }
  LinuxConfigProbe probe;
  const std::vector<ConfigProblem> problems = CheckConfig(*config, probe);
  if (!problems.empty()) std::cerr << FormatProblems(path, problems) << "\n";
  if (HasErrors(problems)) return common::kExitUsage;
  std::cout << path << ": OK (" << config->volumes.size() << " volume(s), "
            << config->groups.size() << " group(s))\n"
            << EncryptionSummary(*config) << "\n";
  return common::kExitOk;
}

int RunDaemon(Config config, BackupPorts ports) {
  const std::string config_path = config.path;
  const std::string db_path = config.state_dir + "/state.db";
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(db_path);
  if (!store.ok()) {
    Log(SD_ERR, std::string(store.status().message()));
    return common::kExitFailure;
  }
  (*store)->set_run_observer(JournalRun);
  // What a run would refuse is said at start too (cbtd still starts: a
  // volume may appear later, an LV be activated).
  LinuxConfigProbe probe;
  for (const ConfigProblem& p : CheckConfig(config, probe)) {
    Log(p.warning ? SD_WARNING : SD_ERR, FormatProblems(config_path, {p}));
  }
  const std::string socket_path = config.socket_path;
  std::string metrics_file = config.metrics_file;
  SchedulerHooks hooks;
  hooks.warn = [](const std::string& m) { Log(SD_WARNING, m); };
  Agent agent(
      std::move(config), **store, ports, [] { return absl::Now(); },
      absl::LocalTimeZone(), std::move(hooks));
  absl::StatusOr<std::vector<RunRecord>> interrupted = agent.Start();
  if (!interrupted.ok()) {
    Log(SD_ERR, absl::StrCat("start: ", interrupted.status().message()));
    return common::kExitFailure;
  }
  for (const std::string& w : agent.start_warnings()) Log(SD_WARNING, w);
  for (const RunRecord& r : *interrupted) {
    Log(SD_WARNING, absl::StrCat("run ", r.id, " of ", r.volume,
                                 " was interrupted at step ", r.step,
                                 "; its volume keeps its previous base"));
  }
  absl::StatusOr<std::unique_ptr<ControlServer>> server =
      ControlServer::Start(socket_path, agent);
  if (!server.ok()) {
    Log(SD_ERR, std::string(server.status().message()));
    return common::kExitFailure;
  }
  sd_notify(0, "READY=1\nSTATUS=idle");
  Log(SD_INFO,
      absl::StrCat("serving on ", socket_path, ", config ", config_path));

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  const absl::Duration period = LoopPeriod();
  const timespec wait = absl::ToTimespec(period);
  absl::Time last_metrics = absl::InfinitePast();
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      absl::StatusOr<Config> fresh = LoadConfig(config_path);
      if (fresh.ok()) {
        metrics_file = fresh->metrics_file;
        agent.Reload(*std::move(fresh));
        Log(SD_INFO, absl::StrCat("reloaded ", config_path));
      } else {
        Log(SD_ERR, absl::StrCat("reload refused, keeping the running "
                                 "config: ",
                                 fresh.status().message()));
      }
      sd_notify(0, "READY=1");
    }
    const absl::Time now = absl::Now();
    agent.Tick(now);
    sd_notify(0,
              absl::StrCat("WATCHDOG=1\nSTATUS=", agent.StatusLine()).c_str());
    if (!metrics_file.empty() && now - last_metrics >= absl::Seconds(15)) {
      last_metrics = now;
      absl::StatusOr<std::vector<VolumeRunStats>> stats = agent.Stats();
      absl::Status s = stats.ok() ? WriteMetricsFile(metrics_file, *stats, now)
                                  : stats.status();
      if (!s.ok()) {
        Log(SD_WARNING, absl::StrCat("metrics: ", s.message()));
      }
    }
  }
  sd_notify(0, "STOPPING=1\nSTATUS=stopping: cancelling runs");
  Log(SD_INFO, "stopping: cancelling running backups (their bases are kept)");
  agent.Shutdown(/*cancel=*/true);
  (*server)->Stop();
  if (!metrics_file.empty()) {
    if (auto stats = agent.Stats(); stats.ok()) {
      WriteMetricsFile(metrics_file, *stats, absl::Now()).IgnoreError();
    }
  }
  Log(SD_INFO, "stopped");
  return common::kExitOk;
}

}  // namespace cbtd::agent
