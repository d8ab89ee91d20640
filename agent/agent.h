// The daemon's domain object: owns the job runner and the schedule, starts
// backup jobs through the BackupOrchestrator, and answers the control API
// (control_service.cc only translates between proto and these calls).
//
// Lifecycle:
//
//   constructed ──Start()──► serving ──Shutdown()──► stopped
//                 (recover     │  ▲
//                  runs,       └──┘ Reload(config) on SIGHUP, Tick(now)
//                  orphans)         from the main loop
//
// Thread-safety: every method may be called from any thread once Start
// has returned.
#ifndef CBTD_AGENT_AGENT_H_
#define CBTD_AGENT_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/backup_ports.h"
#include "agent/backup_run.h"
#include "agent/config.h"
#include "agent/job_runner.h"
#include "agent/state_store.h"

namespace cbtd::agent {

// One configured volume as the control API shows it.
struct VolumeStatus {
  VolumeConfig config;
  std::string group;  // the group it belongs to, if any
  bool busy = false;  // a run is queued or in progress
  std::optional<TrackingRecord> tracking;
  std::optional<RunRecord> last_run;
  std::optional<absl::Time> next_run;  // from its or its group's schedule
};

// A run with live progress when it is in progress.
struct RunView {
  RunRecord record;
  std::optional<RunProgress> progress;
};

struct AgentStatus {
  absl::Time started_at;
  std::string config_path;
  std::string receiver;
  int running_jobs = 0;
  int queued_jobs = 0;
  int volumes = 0;
  int groups = 0;
};

struct ConsistencyPointResult {
  std::vector<SnapshotRef> snapshots;
  std::vector<int64_t> run_ids;  // empty unless a backup follows
};

class Agent {
 public:
  using Clock = std::function<absl::Time()>;
  // `store` and the ports must outlive the Agent.
  Agent(Config config, StateStore& store, BackupPorts ports, Clock clock,
        absl::TimeZone tz);
  ~Agent();  // Shutdown(/*cancel=*/true)
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Marks runs a dead process left 'running' as interrupted and removes the
  // agent's orphaned snapshots (keeping every committed base). Returns the
  // interrupted runs, for the log.
  absl::StatusOr<std::vector<RunRecord>> Start();
  // What Start could not do but did not stop for, one line each, for the
  // log (e.g. orphan cleanup failed).
  const std::vector<std::string>& start_warnings() const {
    return start_warnings_;
  }

  // Queues a backup of a volume or group; returns one run id per member.
  // NOT_FOUND for an unknown target, FAILED_PRECONDITION when a member is
  // busy, UNAVAILABLE while shutting down.
  absl::StatusOr<std::vector<int64_t>> BackupNow(const std::string& target,
                                                 bool full,
                                                 const std::string& trigger);

  // The hypervisor trigger. Returns once the group's consistency point is
  // taken (the guest may resume). With `backup`, the backup continues in
  // the background from that point (run ids returned); without, the
  // snapshots are kept for the caller and tracking is untouched.
  absl::StatusOr<ConsistencyPointResult> TakeConsistencyPoint(
      const std::string& target, bool backup, bool full);

  std::vector<VolumeStatus> ListVolumes();
  // Newest first; `volume` empty means all; `active_only` keeps running ones.
  absl::StatusOr<std::vector<RunView>> ListRuns(const std::string& volume,
                                                int limit, bool active_only);
  // NOT_FOUND when the run is not queued or running.
  absl::Status Cancel(int64_t run_id);

  // A configured volume's versions at the receiver, restore, verify
  // (ports.vault). NOT_FOUND for an unknown volume; a restore onto a
  // configured volume's own device is refused (FAILED_PRECONDITION).
  absl::StatusOr<std::vector<VersionView>> ListVersions(
      const std::string& volume);
  absl::StatusOr<RestoreOutcome> Restore(const RestoreRequest& request);
  absl::StatusOr<VerifyOutcome> Verify(const std::string& volume,
                                       const std::string& version);
  AgentStatus Status();
  // One line for sd_notify STATUS=.
  std::string StatusLine();

  // Starts every scheduled backup that is due at `now`. Busy targets are
  // skipped until their next slot.
  void Tick(absl::Time now);
  // Applies a new config to runs started from now on; running jobs keep
  // the config they started with.
  void Reload(Config config);
  // Refuses new runs and waits for running ones; with `cancel` they stop
  // at their next check (leaving every base intact).
  void Shutdown(bool cancel);

  // The per-volume run statistics, for the metrics file.
  absl::StatusOr<std::vector<VolumeRunStats>> Stats() { return store_.Stats(); }

 private:
  absl::StatusOr<std::vector<int64_t>> Submit(BackupPlan plan);
  // OK when `volume` is configured and a VaultBrowser is wired in.
  absl::Status CheckVaultVolume(const std::string& volume);
  std::optional<absl::Time> NextRunLocked(const std::string& target) const;

  StateStore& store_;
  BackupPorts ports_;
  std::vector<std::string> start_warnings_;
  BackupOrchestrator orchestrator_;
  Clock clock_;
  absl::TimeZone tz_;
  absl::Time started_at_;
  JobRunner runner_;

  mutable std::mutex mu_;
  Config config_;
  // Live runs: run id -> its job and progress.
  struct LiveRun {
    JobRunner::JobId job;
    std::shared_ptr<RunControl> control;
  };
  std::map<int64_t, LiveRun> live_;
  // Last scheduled start per target, the anchor for the next one.
  std::map<std::string, absl::Time> last_scheduled_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_AGENT_H_
