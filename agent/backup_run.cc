#include "agent/backup_run.h"

#include "absl/strings/str_cat.h"

namespace cbtd::agent {
namespace {

ConsistencyRequest RequestFor(const Config& config, const GroupConfig* group,
                              const VolumeConfig* single) {
  ConsistencyRequest r;
  if (group != nullptr) {
    r.group = group->name;
    for (const std::string& m : group->members) {
      r.volumes.push_back(*config.FindVolume(m));
    }
    r.freeze = group->freeze;
    r.freeze_timeout = group->freeze_timeout;
    r.hook_timeout = group->hook_timeout;
    r.pre_hooks = group->pre_hooks;
    r.frozen_hooks = group->frozen_hooks;
    r.post_hooks = group->post_hooks;
    r.sequential = group->sequential;
  } else {
    r.volumes.push_back(*single);
  }
  return r;
}

std::string StatusText(const absl::Status& s) {
  return std::string(s.message());
}

}  // namespace

absl::StatusOr<BackupPlan> PlanBackup(const Config& config,
                                      const std::string& target, bool full,
                                      const std::string& trigger) {
  const GroupConfig* group = config.FindGroup(target);
  const VolumeConfig* volume = config.FindVolume(target);
  if (group == nullptr && volume == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "'", target, "' is neither a [volume.", target, "] nor a [group.",
        target, "] in ", config.path, "; 'cbtctl volumes' lists them"));
  }
  BackupPlan plan;
  plan.request = RequestFor(config, group, volume);
  plan.full = full;
  plan.trigger = trigger;
  plan.bandwidth_limit_bytes_per_sec = config.bandwidth_limit_bytes_per_sec;
  return plan;
}

absl::StatusOr<std::vector<int64_t>> BackupOrchestrator::Prepare(
    const BackupPlan& plan) {
  std::vector<int64_t> ids;
  const absl::Time now = clock_();
  for (const VolumeConfig& v : plan.request.volumes) {
    RunRecord r;
    r.volume = v.name;
    r.group = plan.request.group;
    r.full = plan.full;
    r.trigger = plan.trigger;
    r.started_at = now;
    r.step = kStepQueued;
    absl::StatusOr<std::optional<TrackingRecord>> base =
        store_.GetTracking(v.name);
    if (!base.ok()) return base.status();
    if (base->has_value()) r.base_version = (*base)->base_version;
    absl::StatusOr<int64_t> id = store_.StartRun(r);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
  }
  return ids;
}

void BackupOrchestrator::Step(int64_t run_id, RunControl& control,
                              const std::string& volume,
                              const std::string& step) {
  control.SetStep(volume, step);
  // Best effort: the step column only sharpens a post-crash report.
  store_.SetRunStep(run_id, step).IgnoreError();
}

void BackupOrchestrator::Fail(int64_t run_id, RunOutcome outcome,
                              RunResult result, const std::string& step,
                              const absl::Status& status) {
  outcome.result = result;
  outcome.step = step;
  outcome.error = StatusText(status);
  // If even this write fails the row stays 'running' and the next start
  // reports it interrupted: still not a silent success.
  store_.FinishRun(run_id, outcome, clock_()).IgnoreError();
}

absl::Status BackupOrchestrator::Execute(const BackupPlan& plan,
                                         const std::vector<int64_t>& run_ids,
                                         RunControl& control) {
  const std::vector<VolumeConfig>& members = plan.request.volumes;
  const std::string first = members.front().name;
  const auto notify = [&](const absl::StatusOr<std::vector<SnapshotRef>>& r) {
    if (plan.on_consistency_point) plan.on_consistency_point(r);
  };
  if (run_ids.size() != members.size()) {
    const absl::Status s =
        absl::InternalError("Execute: one run id per member expected");
    notify(s);
    return s;
  }
  if (control.cancelled()) {
    notify(absl::CancelledError("cancelled before it started"));
    for (int64_t id : run_ids) {
      Fail(id, {}, RunResult::kCancelled, kStepQueued,
           absl::CancelledError("cancelled before it started"));
    }
    return absl::CancelledError("cancelled before it started");
  }
  for (int64_t id : run_ids) Step(id, control, first, kStepConsistencyPoint);
  absl::StatusOr<std::unique_ptr<ConsistencyPoint>> point =
      ports_.snapshots->Take(plan.request);
  if (!point.ok()) {
    const absl::Status s(
        point.status().code(),
        absl::StrCat("consistency point failed: ", StatusText(point.status())));
    notify(s);
    for (int64_t id : run_ids) {
      Fail(id, {}, RunResult::kFailed, kStepConsistencyPoint, s);
    }
    return s;
  }
  const std::vector<SnapshotRef>& snaps = (*point)->snapshots();
  notify(snaps);
  absl::Status first_error;
  for (size_t i = 0; i < members.size(); ++i) {
    const SnapshotRef* snap = nullptr;
    for (const SnapshotRef& s : snaps) {
      if (s.volume == members[i].name) snap = &s;
    }
    absl::Status s;
    if (snap == nullptr) {
      s = absl::InternalError(absl::StrCat(
          "the consistency point has no snapshot of '", members[i].name, "'"));
      Fail(run_ids[i], {}, RunResult::kFailed, kStepConsistencyPoint, s);
    } else {
      s = RunMember(plan, members[i], *snap, run_ids[i], **point, control);
    }
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  // `point` goes out of scope here: snapshots not kept are removed.
  return first_error;
}

absl::Status BackupOrchestrator::RunMember(const BackupPlan& plan,
                                           const VolumeConfig& volume,
                                           const SnapshotRef& snapshot,
                                           int64_t run_id,
                                           ConsistencyPoint& point,
                                           RunControl& control) {
  RunOutcome outcome;
  const auto cancelled = [&](const std::string& step) {
    const absl::Status s = absl::CancelledError(
        absl::StrCat("cancelled at step ", step, "; the previous base of '",
                     volume.name, "' is kept"));
    Fail(run_id, outcome, RunResult::kCancelled, step, s);
    return s;
  };
  const auto failed = [&](const std::string& step, const absl::Status& st) {
    const absl::Status s(
        st.code(), absl::StrCat(volume.name, ": ", step, ": ", StatusText(st)));
    Fail(run_id, outcome,
         st.code() == absl::StatusCode::kCancelled ? RunResult::kCancelled
                                                   : RunResult::kFailed,
         step, s);
    return s;
  };

  // --- changed set
  if (control.cancelled()) return cancelled(kStepChangedSet);
  Step(run_id, control, volume.name, kStepChangedSet);
  absl::StatusOr<std::optional<TrackingRecord>> base =
      store_.GetTracking(volume.name);
  if (!base.ok()) return failed(kStepChangedSet, base.status());
  if (base->has_value()) outcome.base_version = (*base)->base_version;
  absl::StatusOr<ChangedSet> changes =
      ports_.tracker->ComputeChanges(volume, *base, snapshot, plan.full);
  if (!changes.ok()) return failed(kStepChangedSet, changes.status());
  outcome.method = changes->method;
  outcome.fallback_reason = changes->fallback_reason;
  outcome.volume_bytes = changes->volume_bytes;
  if (changes->full) outcome.base_version.clear();

  // --- send; the receiver commits before this returns
  if (control.cancelled()) return cancelled(kStepSend);
  Step(run_id, control, volume.name, kStepSend);
  SendRequest request;
  request.volume = &volume;
  request.snapshot = snapshot;
  request.changes = &*changes;
  request.base_version = outcome.base_version;
  request.bandwidth_limit_bytes_per_sec = plan.bandwidth_limit_bytes_per_sec;
  absl::StatusOr<SendResult> sent =
      ports_.sender->SendAndCommit(request, control);
  ChangedSet everything;
  if (!sent.ok() &&
      sent.status().code() == absl::StatusCode::kFailedPrecondition &&
      !request.base_version.empty()) {
    // The receiver no longer holds our base (pruned, vault replaced): the
    // chain is broken. Send against nothing, now: the whole snapshot is
    // read and only the chunks the receiver lacks travel.
    everything.full = true;
    everything.volume_bytes = changes->volume_bytes;
    everything.extents.Add(0, changes->volume_bytes);
    everything.method = changes->method;
    everything.next_state_blob = changes->next_state_blob;
    everything.keep_snapshot = changes->keep_snapshot;
    outcome.method = "hash";
    outcome.fallback_reason =
        absl::StrCat("the receiver does not hold base version ",
                     request.base_version, ": ", StatusText(sent.status()));
    outcome.base_version.clear();
    request.changes = &everything;
    request.base_version.clear();
    sent = ports_.sender->SendAndCommit(request, control);
  }
  if (!sent.ok()) return failed(kStepSend, sent.status());
  outcome.bytes_read = sent->bytes_read;
  outcome.bytes_sent = sent->bytes_sent;
  outcome.version_id = sent->version_id;

  // --- the commit point: tracking state advances with the run record
  Step(run_id, control, volume.name, kStepCommitState);
  TrackingRecord next;
  next.volume = volume.name;
  next.method = changes->method;
  next.state_blob = changes->next_state_blob;
  if (changes->keep_snapshot) next.base_snapshot = snapshot.snapshot_name;
  next.base_version = sent->version_id;
  next.updated_at = clock_();
  if (absl::Status s = store_.CommitRun(run_id, outcome, next); !s.ok()) {
    // The receiver has the version but our state does not point at it;
    // the old base still matches the old state, so the next run is an
    // incremental from the old base (the receiver still has that too).
    return failed(kStepCommitState, s);
  }
  // Released from the point either way: a snapshot the next run does not
  // need is removed below, inside the run, so a finished run has left
  // nothing behind.
  point.Keep(volume.name);

  // --- after the commit nothing undoes the backup; failures are notes
  std::vector<std::string> notes;
  std::string note_step = kStepDone;
  control.SetStep(volume.name, kStepRotateBase);
  if (!changes->keep_snapshot) {
    if (absl::Status s = ports_.snapshots->RemoveSnapshot(
            volume.name, snapshot.snapshot_name);
        !s.ok()) {
      note_step = kStepRotateBase;
      notes.push_back(absl::StrCat("snapshot ", snapshot.snapshot_name,
                                   " not removed (cbtd removes it at its "
                                   "next start): ",
                                   StatusText(s)));
    }
  }
  if (base->has_value() && !(*base)->base_snapshot.empty() &&
      (*base)->base_snapshot != snapshot.snapshot_name) {
    if (absl::Status s = ports_.snapshots->RemoveSnapshot(
            volume.name, (*base)->base_snapshot);
        !s.ok()) {
      note_step = kStepRotateBase;
      notes.push_back(absl::StrCat("old base snapshot ", (*base)->base_snapshot,
                                   " not removed (cbtd removes it at its "
                                   "next start): ",
                                   StatusText(s)));
    }
  }
  if (!volume.retention.KeepsEverything()) {
    Step(run_id, control, volume.name, kStepRetention);
    if (absl::Status s = ports_.retention->Apply(volume.name, volume.retention);
        !s.ok()) {
      note_step = kStepRetention;
      notes.push_back(
          absl::StrCat("retention not applied (the next run "
                       "retries): ",
                       StatusText(s)));
    }
  }
  outcome.result = RunResult::kSucceeded;
  outcome.step = note_step;
  for (const std::string& n : notes) {
    outcome.error += outcome.error.empty() ? n : "; " + n;
  }
  control.SetStep(volume.name, kStepDone);
  store_.FinishRun(run_id, outcome, clock_()).IgnoreError();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SnapshotRef>>
BackupOrchestrator::TakeConsistencyPointOnly(
    const ConsistencyRequest& request) {
  absl::StatusOr<std::unique_ptr<ConsistencyPoint>> point =
      ports_.snapshots->Take(request);
  if (!point.ok()) return point.status();
  for (const VolumeConfig& v : request.volumes) (*point)->Keep(v.name);
  return (*point)->snapshots();
}

}  // namespace cbtd::agent
