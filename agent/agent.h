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

// What the scheduler uses besides the clock; an empty member gets the real
// one.
struct SchedulerHooks {
  // A warning for the log (a slot skipped or missed). Default: a line on
  // stderr with sd-daemon's "<4>" (warning) prefix, as daemon.cc logs.
  std::function<void(const std::string&)> warn;
  // A random duration in [0, max], for randomized_delay. Default: uniform,
  // from a std::mt19937_64 seeded by std::random_device. Called with the
  // Agent's lock held, so it needs no lock of its own.
  std::function<absl::Duration(absl::Duration max)> random_delay;
};

class Agent {
 public:
  using Clock = std::function<absl::Time()>;
  // `store` and the ports must outlive the Agent.
  Agent(Config config, StateStore& store, BackupPorts ports, Clock clock,
        absl::TimeZone tz, SchedulerHooks hooks = {});
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
  // `change_lists` (volume -> list JSON, AttachChangeLists) are handed to
  // members tracked by external lists. NOT_FOUND for an unknown target,
  // INVALID_ARGUMENT for a list no member takes, FAILED_PRECONDITION when
  // a member is busy, UNAVAILABLE while shutting down.
  absl::StatusOr<std::vector<int64_t>> BackupNow(
      const std::string& target, bool full, const std::string& trigger,
      const std::map<std::string, std::string>& change_lists = {});

  // The hypervisor trigger. Returns once the group's consistency point is
  // taken (the guest may resume). With `backup`, the backup continues in
  // the background from that point (run ids returned); without, the
  // snapshots are kept for the caller and tracking is untouched.
  absl::StatusOr<ConsistencyPointResult> TakeConsistencyPoint(
      const std::string& target, bool backup, bool full,
      const std::map<std::string, std::string>& change_lists = {});

  std::vector<VolumeStatus> ListVolumes();
  // Newest first; `volume` empty means all; `active_only` keeps running ones.
  absl::StatusOr<std::vector<RunView>> ListRuns(const std::string& volume,
                                                int limit, bool active_only);
  // NOT_FOUND when the run is not queued or running.
  absl::Status Cancel(int64_t run_id);

  // A configured volume's versions at the receiver, restore, verify
  // (ports.vault). NOT_FOUND for an unknown volume; a restore onto a
  // configured volume's own device is refused (FAILED_PRECONDITION).
  // ListVersions of a configured group: the versions of its committed
  // group versions, every member's, ordered by group version id.
  absl::StatusOr<std::vector<VersionView>> ListVersions(
      const std::string& target);
  // A restore is a job over its volume (no backup of it runs meanwhile),
  // recorded as a run (trigger "restore", or "rollback" for in_place) with
  // progress and cancel like a backup's; returns when it ends.
  // `in_place` rolls the volume itself back: only the chunks that differ
  // are written, the device must be idle (not mounted, held or open), and
  // the volume's next backup compares every chunk once (its tracking chain
  // restarts). Otherwise a target that is a configured volume's device,
  // under any name, is refused (FAILED_PRECONDITION).
  absl::StatusOr<RestoreOutcome> Restore(const RestoreRequest& request);
  absl::StatusOr<VerifyOutcome> Verify(const std::string& volume,
                                       const std::string& version);
  AgentStatus Status();
  // One line for sd_notify STATUS=.
  std::string StatusLine();

  // Starts every scheduled backup that is due at `now`: its slot has come
  // and its randomized delay (drawn once per slot) has passed. A target
  // that cannot start (busy, or any other error) skips the slot until its
  // next one, with a warning naming the slot and why. When several slots
  // have passed (cbtd was stopped, the host suspended) it runs once, with
  // a warning saying how many slots were missed.
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
  // The restore's target: the volume's own device for a rollback; else
  // refuses a configured volume's device.
  absl::Status ResolveRestoreTarget(RestoreRequest& request);
  absl::StatusOr<RestoreOutcome> RunRestoreJob(RestoreRequest request);
  // The job's body: runs the restore, records the run's outcome.
  absl::StatusOr<RestoreOutcome> ExecuteRestore(RestoreRequest request,
                                                int64_t run,
                                                RunControl& control);
  // After a rollback: the volume's tracking state says so, so its next
  // run compares every chunk with its base version.
  absl::Status RestartChain(const RestoreRequest& request, int64_t run,
                            const RunOutcome& outcome);
  // OK when `volume` is configured and a VaultBrowser is wired in.
  absl::Status CheckVaultVolume(const std::string& volume);
  // A due slot found by Tick, for the log.
  struct DueSlot {
    std::string target;
    absl::Time slot;  // the one run now: the latest that has passed
    int missed = 0;   // earlier slots that passed without a run
    absl::Time first_missed;
    absl::Time last_missed;
  };
  // The schedule of a volume or group and its randomized_delay; nullptr
  // when it has none.
  const Schedule* ScheduleLocked(const std::string& target,
                                 absl::Duration& delay) const;
  // The next slot after the target's anchor (the delay not added).
  std::optional<absl::Time> NextSlotLocked(const std::string& target) const;
  // The next slot plus its delay once Tick has drawn it.
  std::optional<absl::Time> NextRunLocked(const std::string& target) const;
  // Draws (once) the delay for `target`'s `slot`.
  absl::Duration DelayLocked(const std::string& target, absl::Time slot,
                             absl::Duration max);
  // When `target` is due at `now`: its slot, and moves its anchor on.
  std::optional<DueSlot> TakeDueLocked(const std::string& target,
                                       absl::Time now);
  std::string FormatSlot(absl::Time t) const;

  StateStore& store_;
  BackupPorts ports_;
  std::vector<std::string> start_warnings_;
  BackupOrchestrator orchestrator_;
  Clock clock_;
  absl::TimeZone tz_;
  SchedulerHooks hooks_;
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
  // The randomized delay drawn for a target's next slot.
  struct DrawnDelay {
    absl::Time slot;
    absl::Duration max;
    absl::Duration delay;
  };
  std::map<std::string, DrawnDelay> delays_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_AGENT_H_
