#include "agent/backup_run.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

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

// The changed set of a full read of the same snapshot, for a run whose
// base the receiver no longer holds.
ChangedSet EverythingOf(const ChangedSet& changes) {
  ChangedSet everything;
  everything.full = true;
  everything.volume_bytes = changes.volume_bytes;
  everything.extents.Add(0, changes.volume_bytes);
  everything.method = changes.method;
  everything.next_state_blob = changes.next_state_blob;
  everything.keep_snapshot = changes.keep_snapshot;
  return everything;
}

// The group version a run of a group commits. Its id is the point's
// instant written as version ids are, and its members are dated at it, so
// retention decides alike for each of them.
GroupPoint NewGroupPoint(const BackupPlan& plan, absl::Time instant) {
  GroupPoint g;
  g.group = plan.request.group;
  g.group_version_id =
      absl::FormatTime("%Y%m%dT%H%M%E3SZ", instant, absl::UTCTimeZone());
  g.created_unix_ms = absl::ToUnixMillis(instant);
  return g;
}

// How many of the plan's members are sent at once.
size_t MembersAtOnce(const BackupPlan& plan) {
  return std::clamp<size_t>(static_cast<size_t>(plan.parallel_members), 1,
                            plan.request.volumes.size());
}

// The rule a group's versions are pruned by, as units: a point is kept
// while any member's rule keeps it (the largest count of each kind), and a
// member without a rule keeps every point.
RetentionPolicy GroupRetention(const BackupPlan& plan) {
  RetentionPolicy merged;
  for (const VolumeConfig& v : plan.request.volumes) {
    const RetentionPolicy& r = v.retention;
    if (r.KeepsEverything()) return RetentionPolicy{};
    merged.keep_last = std::max(merged.keep_last, r.keep_last);
    merged.keep_hourly = std::max(merged.keep_hourly, r.keep_hourly);
    merged.keep_daily = std::max(merged.keep_daily, r.keep_daily);
    merged.keep_weekly = std::max(merged.keep_weekly, r.keep_weekly);
    merged.keep_monthly = std::max(merged.keep_monthly, r.keep_monthly);
  }
  return merged;
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
  if (group != nullptr) plan.parallel_members = group->parallel;
  return plan;
}

absl::Status AttachChangeLists(
    BackupPlan& plan, const std::map<std::string, std::string>& lists) {
  for (const auto& [name, json] : lists) {
    VolumeConfig* member = nullptr;
    for (VolumeConfig& v : plan.request.volumes) {
      if (v.name == name) member = &v;
    }
    if (member == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("a change list names volume '", name,
                       "', which is not a member of what is backed up"));
    }
    if (member->method != TrackingMethod::kExternal) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a change list was handed in for volume '", name,
          "', which is not tracked by external lists (set method = external "
          "in its [volume.",
          name, "] section)"));
    }
    member->handed_changes = json;
  }
  return absl::OkStatus();
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

// What RunMember's steps share about one member's run.
struct BackupOrchestrator::Member {
  const BackupPlan& plan;
  const VolumeConfig& volume;
  const SnapshotRef& snapshot;
  int64_t run_id;
  RunControl& control;
  RunOutcome outcome;
  std::optional<TrackingRecord> base;  // the committed state before this run
  const GroupPoint* group = nullptr;   // null: a volume on its own
  std::string root_hash;               // of the committed version
  bool keep_snapshot = true;           // the changed set's
};

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
  std::optional<GroupPoint> group;
  if (!plan.request.group.empty()) group = NewGroupPoint(plan, clock_());
  std::deque<RunControl> controls;  // one per member, outliving them
  absl::Status first_error;
  std::vector<std::unique_ptr<Member>> committed =
      RunMembers(plan, run_ids, **point, group ? &*group : nullptr, control,
                 controls, first_error);
  GroupOutcome outcome;
  if (group.has_value()) {
    absl::Status s = CommitGroup(*group, committed, first_error);
    if (!s.ok()) {
      outcome.not_committed = std::string(s.message());
      if (first_error.ok()) first_error = s;
    } else {
      outcome.retention = ApplyGroupRetention(plan);
    }
  }
  for (const auto& m : committed) FinishAfterCommit(*m, outcome);
  // `point` goes out of scope here: snapshots not kept are removed.
  return first_error;
}

std::vector<std::unique_ptr<BackupOrchestrator::Member>>
BackupOrchestrator::RunMembers(const BackupPlan& plan,
                               const std::vector<int64_t>& run_ids,
                               ConsistencyPoint& point, const GroupPoint* group,
                               RunControl& control,
                               std::deque<RunControl>& controls,
                               absl::Status& first_error) {
  const std::vector<VolumeConfig>& members = plan.request.volumes;
  const size_t n = members.size();
  for (size_t i = 0; i < n; ++i) controls.emplace_back(&control);
  std::vector<std::unique_ptr<Member>> done(n);
  std::vector<absl::Status> results(n);
  const auto run = [&](size_t i) {
    const SnapshotRef* snap = nullptr;
    for (const SnapshotRef& s : point.snapshots()) {
      if (s.volume == members[i].name) snap = &s;
    }
    if (snap == nullptr) {
      results[i] = absl::InternalError(absl::StrCat(
          "the consistency point has no snapshot of '", members[i].name, "'"));
      Fail(run_ids[i], {}, RunResult::kFailed, kStepConsistencyPoint,
           results[i]);
      return;
    }
    auto m = std::make_unique<Member>(Member{plan,
                                             members[i],
                                             *snap,
                                             run_ids[i],
                                             controls[i],
                                             {},
                                             {},
                                             group,
                                             {},
                                             true});
    results[i] = RunMember(*m, point);
    if (results[i].ok()) done[i] = std::move(m);
  };
  const size_t width = MembersAtOnce(plan);
  std::atomic<size_t> next{0};
  const auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) run(i);
  };
  std::vector<std::thread> helpers;
  for (size_t w = 1; w < width; ++w) helpers.emplace_back(worker);
  worker();
  for (std::thread& t : helpers) t.join();
  std::vector<std::unique_ptr<Member>> committed;
  for (size_t i = 0; i < n; ++i) {
    if (!results[i].ok() && first_error.ok()) first_error = results[i];
    if (done[i] != nullptr) committed.push_back(std::move(done[i]));
  }
  return committed;
}

std::string BackupOrchestrator::ApplyGroupRetention(const BackupPlan& plan) {
  const RetentionPolicy policy = GroupRetention(plan);
  if (policy.KeepsEverything()) return "";
  absl::Status s = ports_.retention->ApplyGroup(plan.request.group, policy);
  if (s.ok()) return "";
  return absl::StrCat("group retention not applied (the next run retries): ",
                      StatusText(s));
}

absl::Status BackupOrchestrator::CommitGroup(
    GroupPoint& group, const std::vector<std::unique_ptr<Member>>& committed,
    const absl::Status& member_error) {
  const std::string name =
      absl::StrCat(group.group, "@", group.group_version_id);
  if (!member_error.ok()) {
    return absl::Status(
        member_error.code(),
        absl::StrCat("group version ", name, " was not committed (",
                     StatusText(member_error),
                     "); the members stored are kept as the next run's base "
                     "but are not a restore point"));
  }
  for (const auto& m : committed) {
    group.members.push_back(
        {m->volume.name, m->outcome.version_id, m->root_hash});
  }
  if (absl::Status s = ports_.sender->CommitGroup(group); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("group version ", name,
                               " was not committed: ", StatusText(s),
                               "; the next run of the group commits one"));
  }
  return absl::OkStatus();
}

absl::Status BackupOrchestrator::RunMember(Member& m, ConsistencyPoint& point) {
  const VolumeConfig& volume = m.volume;
  const int64_t run_id = m.run_id;
  RunControl& control = m.control;

  if (control.cancelled()) return Cancelled(m, kStepChangedSet);
  Step(run_id, control, volume.name, kStepChangedSet);
  // A snapshot that overflowed fails its reads with EIO: say so instead.
  const auto explained = [&](const absl::Status& s) {
    const std::string why = point.Overflow(volume.name);
    if (why.empty()) return s;
    return absl::FailedPreconditionError(
        absl::StrCat(why, " (the failure: ", StatusText(s), ")"));
  };
  absl::StatusOr<ChangedSet> changes = ComputeChangedSet(m);
  if (!changes.ok()) {
    return Failed(m, kStepChangedSet, explained(changes.status()));
  }

  // The receiver commits before SendAndCommit returns.
  if (control.cancelled()) return Cancelled(m, kStepSend);
  Step(run_id, control, volume.name, kStepSend);
  absl::StatusOr<SendResult> sent = SendAndCommit(m, *changes);
  if (!sent.ok()) return Failed(m, kStepSend, explained(sent.status()));

  // The commit point: tracking state advances with the run record.
  Step(run_id, control, volume.name, kStepCommitState);
  if (absl::Status s = CommitState(m, *changes, *sent); !s.ok()) {
    // The receiver has the version but our state does not point at it;
    // the old base still matches the old state, so the next run is an
    // incremental from the old base (the receiver still has that too).
    return Failed(m, kStepCommitState, s);
  }
  // Released from the point either way: a snapshot the next run does not
  // need is removed below, inside the run, so a finished run has left
  // nothing behind.
  point.Keep(volume.name);
  m.keep_snapshot = changes->keep_snapshot;
  return absl::OkStatus();
}

absl::Status BackupOrchestrator::Cancelled(Member& m, const std::string& step) {
  const absl::Status s = absl::CancelledError(
      absl::StrCat("cancelled at step ", step, "; the previous base of '",
                   m.volume.name, "' is kept"));
  Fail(m.run_id, m.outcome, RunResult::kCancelled, step, s);
  return s;
}

absl::Status BackupOrchestrator::Failed(Member& m, const std::string& step,
                                        const absl::Status& status) {
  const absl::Status s(status.code(), absl::StrCat(m.volume.name, ": ", step,
                                                   ": ", StatusText(status)));
  Fail(m.run_id, m.outcome,
       status.code() == absl::StatusCode::kCancelled ? RunResult::kCancelled
                                                     : RunResult::kFailed,
       step, s);
  return s;
}

absl::StatusOr<ChangedSet> BackupOrchestrator::ComputeChangedSet(Member& m) {
  absl::StatusOr<std::optional<TrackingRecord>> base =
      store_.GetTracking(m.volume.name);
  if (!base.ok()) return base.status();
  m.base = *std::move(base);
  if (m.base.has_value()) m.outcome.base_version = m.base->base_version;
  absl::StatusOr<ChangedSet> changes =
      ports_.tracker->ComputeChanges(m.volume, m.base, m.snapshot, m.plan.full);
  if (!changes.ok()) return changes.status();
  m.outcome.method = changes->method;
  m.outcome.fallback_reason = changes->fallback_reason;
  m.outcome.volume_bytes = changes->volume_bytes;
  if (changes->full) m.outcome.base_version.clear();
  return changes;
}

absl::StatusOr<SendResult> BackupOrchestrator::SendAndCommit(
    Member& m, const ChangedSet& changes) {
  SendRequest request;
  request.volume = &m.volume;
  request.snapshot = m.snapshot;
  request.changes = &changes;
  request.base_version = m.outcome.base_version;
  // Members sent at once share the host's limit.
  const uint64_t limit = m.plan.bandwidth_limit_bytes_per_sec;
  request.bandwidth_limit_bytes_per_sec =
      limit == 0 ? 0 : std::max<uint64_t>(1, limit / MembersAtOnce(m.plan));
  if (m.group != nullptr) {
    request.group = m.group->group;
    request.group_version_id = m.group->group_version_id;
    request.created_unix_ms = m.group->created_unix_ms;
  }
  absl::StatusOr<SendResult> sent =
      ports_.sender->SendAndCommit(request, m.control);
  ChangedSet everything;
  if (!sent.ok() && sent.status().code() == absl::StatusCode::kNotFound &&
      !request.base_version.empty()) {
    // The receiver no longer holds our base (pruned, vault replaced): the
    // chain is broken. Send against nothing, now: the whole snapshot is
    // read and only the chunks the receiver lacks travel.
    everything = EverythingOf(changes);
    m.outcome.method = "hash";
    m.outcome.fallback_reason =
        absl::StrCat("the receiver does not hold base version ",
                     request.base_version, ": ", StatusText(sent.status()));
    m.outcome.base_version.clear();
    request.changes = &everything;
    request.base_version.clear();
    sent = ports_.sender->SendAndCommit(request, m.control);
  }
  if (!sent.ok()) return sent.status();
  m.outcome.bytes_read = sent->bytes_read;
  m.outcome.bytes_sent = sent->bytes_sent;
  m.outcome.version_id = sent->version_id;
  m.root_hash = sent->root_hash;
  return sent;
}

absl::Status BackupOrchestrator::CommitState(Member& m,
                                             const ChangedSet& changes,
                                             const SendResult& sent) {
  TrackingRecord next;
  next.volume = m.volume.name;
  next.method = changes.method;
  next.state_blob = changes.next_state_blob;
  if (changes.keep_snapshot) next.base_snapshot = m.snapshot.snapshot_name;
  next.base_version = sent.version_id;
  next.updated_at = clock_();
  return store_.CommitRun(m.run_id, m.outcome, next);
}

void BackupOrchestrator::FinishAfterCommit(Member& m,
                                           const GroupOutcome& group) {
  // After the commit nothing undoes the backup; failures are notes.
  std::vector<std::string> notes;
  std::string note_step = kStepDone;
  const auto note = [&](const std::string& step, const std::string& text) {
    note_step = step;
    notes.push_back(text);
  };
  const std::string& volume = m.volume.name;
  const std::string& snapshot = m.snapshot.snapshot_name;
  m.control.SetStep(volume, kStepRotateBase);
  if (!m.keep_snapshot) {
    if (absl::Status s = ports_.snapshots->RemoveSnapshot(volume, snapshot);
        !s.ok()) {
      note(kStepRotateBase, absl::StrCat("snapshot ", snapshot,
                                         " not removed (cbtd removes it at its "
                                         "next start): ",
                                         StatusText(s)));
    }
  }
  if (m.base.has_value() && !m.base->base_snapshot.empty() &&
      m.base->base_snapshot != snapshot) {
    const std::string& old = m.base->base_snapshot;
    if (absl::Status s = ports_.snapshots->RemoveSnapshot(volume, old);
        !s.ok()) {
      note(kStepRotateBase, absl::StrCat("old base snapshot ", old,
                                         " not removed (cbtd removes it at its "
                                         "next start): ",
                                         StatusText(s)));
    }
  }
  if (!group.not_committed.empty()) {
    note(kStepGroupCommit, group.not_committed);
  }
  if (!group.retention.empty()) note(kStepRetention, group.retention);
  // The volume's own rule prunes its versions backed up on their own (a
  // group's are the group's). An uncommitted group version prunes
  // nothing: its members' next run retries the point.
  const RetentionPolicy& policy = m.volume.retention;
  if (group.not_committed.empty() && !policy.KeepsEverything()) {
    Step(m.run_id, m.control, volume, kStepRetention);
    if (absl::Status s = ports_.retention->Apply(volume, policy); !s.ok()) {
      note(kStepRetention, absl::StrCat("retention not applied (the next run "
                                        "retries): ",
                                        StatusText(s)));
    }
  }
  m.outcome.result = RunResult::kSucceeded;
  m.outcome.step = note_step;
  for (const std::string& n : notes) {
    m.outcome.error += m.outcome.error.empty() ? n : "; " + n;
  }
  // What a watcher sees until the job ends is what the record says.
  m.control.SetStep(volume, note_step);
  store_.FinishRun(m.run_id, m.outcome, clock_()).IgnoreError();
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
