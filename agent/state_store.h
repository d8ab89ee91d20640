// cbtd's durable state: one SQLite database (default
// /var/lib/cbtd/state.db) holding, per volume, the tracking state that
// links it to its last committed version, and the history of every run.
//
// Crash safety: every write is one SQLite transaction (WAL,
// synchronous=FULL). CommitRun advances a volume's tracking state and marks
// its run succeeded in the same transaction, so after a crash either both
// happened or neither did. A run row still 'running' when the store is
// opened belongs to a process that died: RecoverInterruptedRuns marks it
// 'interrupted', keeping the step it was in.
//
// Schema: versioned with PRAGMA user_version; Open migrates older files
// forward and refuses files from a newer cbtd (FAILED_PRECONDITION).
//
// Thread-safety: all methods may be called from any thread; one internal
// mutex serialises them.
#ifndef CBTD_AGENT_STATE_STORE_H_
#define CBTD_AGENT_STATE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sqlite3;

namespace cbtd::agent {

enum class RunResult {
  kRunning,
  kSucceeded,
  kFailed,
  kCancelled,
  kInterrupted
};
std::string_view RunResultName(RunResult r);  // "running", "succeeded", ...

// The steps of a run, as recorded in failed_step / step. Kept as text in
// the database so the history stays readable by sqlite3(1).
inline constexpr char kStepQueued[] = "queued";
inline constexpr char kStepConsistencyPoint[] = "consistency-point";
inline constexpr char kStepChangedSet[] = "changed-set";
inline constexpr char kStepSend[] = "send";
inline constexpr char kStepCommitState[] = "commit-state";
inline constexpr char kStepRotateBase[] = "rotate-base";
inline constexpr char kStepGroupCommit[] = "group-commit";
inline constexpr char kStepRetention[] = "retention";
inline constexpr char kStepDone[] = "done";
// A restore job's one step (its run's trigger is kTriggerRestore or
// kTriggerRollback).
inline constexpr char kStepRestore[] = "restore";
inline constexpr char kTriggerRestore[] = "restore";
inline constexpr char kTriggerRollback[] = "rollback";

// What links a volume to its last committed version at the receiver. The
// next run's changed set is computed against base_snapshot with the
// tracker's opaque state blob; base_version is what the receiver must hold.
struct TrackingRecord {
  std::string volume;
  std::string method;         // "thin-delta", "hash", ...
  std::string state_blob;     // owned by the change tracker; opaque here
  std::string base_snapshot;  // name of the kept snapshot; may be empty
  std::string base_version;   // receiver version id
  absl::Time updated_at = absl::UnixEpoch();
};

struct RunRecord {
  int64_t id = 0;
  std::string volume;
  std::string group;    // empty for a single-volume run
  bool full = false;    // asked for a full backup
  std::string trigger;  // "schedule", "api", "hypervisor"
  absl::Time started_at = absl::UnixEpoch();
  std::optional<absl::Time> ended_at;
  RunResult result = RunResult::kRunning;
  std::string step;  // the step it is in, or failed in
  std::string method;
  std::string fallback_reason;  // why the hash fallback ran; empty if not
  uint64_t bytes_read = 0;
  uint64_t bytes_sent = 0;
  uint64_t volume_bytes = 0;
  std::string base_version;
  std::string version_id;  // the committed version, when succeeded
  std::string error;       // what failed and what to do
};

// Fields a finished run records; see RunRecord.
struct RunOutcome {
  RunResult result = RunResult::kSucceeded;
  std::string step;
  std::string method;
  std::string fallback_reason;
  uint64_t bytes_read = 0;
  uint64_t bytes_sent = 0;
  uint64_t volume_bytes = 0;
  std::string base_version;
  std::string version_id;
  std::string error;
};

// Per-volume aggregates of restore jobs (trigger restore or rollback).
struct RestoreStats {
  std::optional<absl::Time> last_success;
  absl::Duration last_duration;     // of the last finished restore
  uint64_t last_bytes_written = 0;  // to the target, by that restore
  int64_t succeeded = 0;            // ever
  int64_t failures = 0;             // failed + interrupted, ever
};

// Per-volume aggregates for the metrics file: backups in the top fields,
// restores and rollbacks in `restores`.
struct VolumeRunStats {
  std::string volume;
  std::optional<absl::Time> last_success;
  absl::Duration last_duration;  // of the last finished run
  uint64_t last_bytes_read = 0;
  uint64_t last_bytes_sent = 0;
  int64_t failures = 0;   // failed + interrupted runs, ever
  int64_t fallbacks = 0;  // runs with a fallback reason, ever
  RestoreStats restores;
};

class StateStore {
 public:
  // Opens (creating if needed) the database at `db_path`; its directory
  // must exist. Migrates the schema to the current version.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(
      const std::string& db_path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  static constexpr int kSchemaVersion = 1;
  int schema_version() const { return kSchemaVersion; }

  // Marks every 'running' row 'interrupted' (ended at `now`, step kept).
  // Returns the rows it changed. Call once at start, before any run.
  absl::StatusOr<std::vector<RunRecord>> RecoverInterruptedRuns(absl::Time now);

  // Called with the row as stored after StartRun (queued) and after
  // FinishRun (ended), outside the store's lock; for the journal. Set it
  // before any run.
  using RunObserver = std::function<void(const RunRecord&)>;
  void set_run_observer(RunObserver observer) {
    observer_ = std::move(observer);
  }

  // Inserts a 'running' row; returns its id.
  absl::StatusOr<int64_t> StartRun(const RunRecord& run);
  // Records the step a running run entered (what failed_step says after a
  // crash).
  absl::Status SetRunStep(int64_t id, const std::string& step);
  // Ends a run without touching tracking state (failed, cancelled, or a
  // success whose tracking was committed earlier).
  absl::Status FinishRun(int64_t id, const RunOutcome& outcome,
                         absl::Time ended_at);
  // The one place tracking advances: in one transaction, replaces the
  // volume's tracking record and records the run's counters and version id.
  // The run stays 'running' (step kStepRotateBase) until FinishRun: if the
  // process dies now, recovery reports it interrupted, with its version.
  absl::Status CommitRun(int64_t id, const RunOutcome& outcome,
                         const TrackingRecord& tracking);

  absl::StatusOr<RunRecord> GetRun(int64_t id);
  // Newest first; `volume` empty means every volume.
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const std::string& volume,
                                                  int limit);

  // nullopt when the volume has no committed version yet.
  absl::StatusOr<std::optional<TrackingRecord>> GetTracking(
      const std::string& volume);
  absl::StatusOr<std::vector<TrackingRecord>> ListTracking();
  // Forgets a volume's chain (the next run is a full / hash run).
  absl::Status ClearTracking(const std::string& volume);

  absl::StatusOr<std::vector<VolumeRunStats>> Stats();

 private:
  explicit StateStore(sqlite3* db) : db_(db) {}
  absl::Status Migrate();
  absl::Status Exec(const char* sql);
  absl::Status Error(const char* what) const;

  void Notify(int64_t id);
  absl::StatusOr<int64_t> InsertRun(const RunRecord& run);  // under mu_

  std::mutex mu_;
  sqlite3* db_;
  RunObserver observer_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_STATE_STORE_H_
