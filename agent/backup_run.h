// One backup job: a consistency point over one volume or a group, then per
// member: changed set → send → receiver commits → advance tracking state →
// keep the new snapshot as base and remove the old one → retention.
//
// The invariant: until the receiver has committed AND the state store has
// recorded the new base in one transaction, the previous base snapshot and
// tracking record stay exactly as they were. Any failure before that point
// leaves them intact and ends the member's run 'failed' (or 'cancelled')
// with `step` naming the step that failed. Failures after it (removing the
// old base, retention) do not undo the backup: the run is 'succeeded' with
// `step` and `error` naming the cleanup that failed.
//
// Members of a group are independent after the consistency point: one
// member failing does not stop the others, and up to [group] `parallel`
// of them (default 2) are sent at once, so a snapshot is held for the
// longest member's transfer rather than the sum. A group's run is one unit at
// the receiver: every member is sent as a member of one group version
// (its id is the point's instant), which is committed only when every
// member's version is (Sender::CommitGroup); until then the receiver
// lists none of them. A member whose own version was committed keeps it
// as its next base either way; if the group version was not committed,
// its run says so ('succeeded' at step group-commit, with the reason) and
// retention waits for a committed point. A group's versions are pruned as
// units by one rule (GroupRetention in backup_run.cc); each member's own
// rule prunes only its versions backed up on their own.
//
// Thread-safety: Prepare and Execute may run concurrently for plans over
// disjoint volumes (JobRunner guarantees that); the ports and the store
// must be thread-safe.
#ifndef CBTD_AGENT_BACKUP_RUN_H_
#define CBTD_AGENT_BACKUP_RUN_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/backup_ports.h"
#include "agent/config.h"
#include "agent/state_store.h"

namespace cbtd::agent {

struct BackupPlan {
  ConsistencyRequest request;  // group (or none) and its members
  bool full = false;
  std::string trigger;  // "schedule", "api", "hypervisor"
  uint64_t bandwidth_limit_bytes_per_sec = 0;
  // Members sent at once after the point ([group] parallel).
  int parallel_members = 1;
  // If set, called once when the consistency point is taken or has failed
  // (or the job was cancelled first): the moment a hypervisor may resume
  // its guest. Runs on the job's thread.
  std::function<void(const absl::StatusOr<std::vector<SnapshotRef>>&)>
      on_consistency_point;
};

// The plan for `target`, a volume or group name in `config`.
// NOT_FOUND names the target and says where targets are defined.
absl::StatusOr<BackupPlan> PlanBackup(const Config& config,
                                      const std::string& target, bool full,
                                      const std::string& trigger);

// Hands each list in `lists` (volume name -> the changes_file JSON) to its
// member of `plan` for this run. INVALID_ARGUMENT, naming it, for a volume
// that is not a member or not tracked by `method = external`.
absl::Status AttachChangeLists(BackupPlan& plan,
                               const std::map<std::string, std::string>& lists);

class BackupOrchestrator {
 public:
  using Clock = std::function<absl::Time()>;
  BackupOrchestrator(BackupPorts ports, StateStore& store, Clock clock)
      : ports_(ports), store_(store), clock_(std::move(clock)) {}

  // Records one 'running' row (step 'queued') per member, in member order,
  // so callers can show and cancel the run before it starts.
  absl::StatusOr<std::vector<int64_t>> Prepare(const BackupPlan& plan);

  // Runs the plan; every outcome is recorded in the store under run_ids
  // (from Prepare). OK when every member committed; otherwise the first
  // member's error.
  absl::Status Execute(const BackupPlan& plan,
                       const std::vector<int64_t>& run_ids,
                       RunControl& control);

  // The hypervisor's "consistency point only": takes one, keeps every
  // snapshot (the caller owns them from now on) and returns their refs.
  // Tracking state is not touched.
  absl::StatusOr<std::vector<SnapshotRef>> TakeConsistencyPointOnly(
      const ConsistencyRequest& request);

 private:
  struct Member;

  // Runs one member after the consistency point up to its state commit;
  // records a failure. FinishAfterCommit finishes a member that committed.
  absl::Status RunMember(Member& m, ConsistencyPoint& point);
  // RunMember of every member, plan.parallel_members at a time, each with
  // its own control in `controls` (under `control`). Returns the members
  // that committed, in member order; `first_error` gets the first failure
  // in member order.
  std::vector<std::unique_ptr<Member>> RunMembers(
      const BackupPlan& plan, const std::vector<int64_t>& run_ids,
      ConsistencyPoint& point, const GroupPoint* group, RunControl& control,
      std::deque<RunControl>& controls, absl::Status& first_error);
  // Commits the group version once every member has; the error, saying
  // what happened to the point, if it was not committed.
  absl::Status CommitGroup(
      GroupPoint& group, const std::vector<std::unique_ptr<Member>>& committed,
      const absl::Status& member_error);
  // RunMember's steps, in order. Each returns its error unrecorded; the
  // caller records it with Failed.
  absl::StatusOr<ChangedSet> ComputeChangedSet(Member& m);
  // Falls back to a full send when the receiver no longer holds the base.
  absl::StatusOr<SendResult> SendAndCommit(Member& m,
                                           const ChangedSet& changes);
  absl::Status CommitState(Member& m, const ChangedSet& changes,
                           const SendResult& sent);
  // What became of a group's point after its members ran; notes for each
  // member's run (empty: fine).
  struct GroupOutcome {
    std::string not_committed;  // why the group version was not committed
    std::string retention;      // why the group's retention failed
  };
  // Rotates the base snapshot, applies retention and records the run as
  // succeeded; failures here, and the group's outcome, become notes in the
  // run record.
  void FinishAfterCommit(Member& m, const GroupOutcome& group);
  // Prunes the group's versions by their one rule; a note if that failed.
  std::string ApplyGroupRetention(const BackupPlan& plan);
  // Record the member's run as cancelled / failed at `step`; return the
  // status the caller reports.
  absl::Status Cancelled(Member& m, const std::string& step);
  absl::Status Failed(Member& m, const std::string& step,
                      const absl::Status& status);
  void Fail(int64_t run_id, RunOutcome outcome, RunResult result,
            const std::string& step, const absl::Status& status);
  void Step(int64_t run_id, RunControl& control, const std::string& volume,
            const std::string& step);

  BackupPorts ports_;
  StateStore& store_;
  Clock clock_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_BACKUP_RUN_H_
