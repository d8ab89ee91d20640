#include "agent/agent.h"

#include <algorithm>
#include <future>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "nlohmann/json.hpp"

namespace cbtd::agent {
namespace {

// Counting missed slots stops here (an every-second calendar over a long
// downtime); the schedule then restarts from now.
constexpr int kMaxCountedSlots = 100000;

SchedulerHooks WithDefaults(SchedulerHooks hooks) {
  if (!hooks.warn) {
    hooks.warn = [](const std::string& message) {
      std::cerr << "<4>cbtd: " << message << std::endl;
    };
  }
  if (!hooks.random_delay) {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    hooks.random_delay = [engine](absl::Duration max) {
      std::uniform_int_distribution<int64_t> us(0,
                                                absl::ToInt64Microseconds(max));
      return absl::Microseconds(us(*engine));
    };
  }
  return hooks;
}

}  // namespace

Agent::Agent(Config config, StateStore& store, BackupPorts ports, Clock clock,
             absl::TimeZone tz, SchedulerHooks hooks)
    : store_(store),
      ports_(ports),
      orchestrator_(ports, store, clock),
      clock_(clock),
      tz_(tz),
      hooks_(WithDefaults(std::move(hooks))),
      started_at_(clock()),
      runner_(config.max_concurrent_runs),
      config_(std::move(config)) {}

Agent::~Agent() { Shutdown(/*cancel=*/true); }

absl::StatusOr<std::vector<RunRecord>> Agent::Start() {
  absl::StatusOr<std::vector<RunRecord>> interrupted =
      store_.RecoverInterruptedRuns(clock_());
  if (!interrupted.ok()) return interrupted.status();
  absl::StatusOr<std::vector<TrackingRecord>> tracking = store_.ListTracking();
  if (!tracking.ok()) return tracking.status();
  std::vector<std::string> keep;
  for (const TrackingRecord& t : *tracking) {
    if (!t.base_snapshot.empty()) keep.push_back(t.base_snapshot);
  }
  // Only now: no run of ours is in flight, so every snapshot of ours that
  // is not a committed base is an orphan of a run that died.
  // A failure here (e.g. no device-mapper on this host) must not keep the
  // control API down: it is reported, and tried again at the next start.
  if (absl::Status s = ports_.snapshots->RemoveOrphans(keep); !s.ok()) {
    start_warnings_.push_back(
        absl::StrCat("orphaned snapshots were not removed (cbtd tries again "
                     "at its next start): ",
                     std::string(s.message())));
  }
  std::lock_guard lock(mu_);
  const auto anchor = [&](const std::string& volume) {
    absl::StatusOr<std::vector<RunRecord>> last = store_.ListRuns(volume, 1);
    return last.ok() && !last->empty() ? (*last)[0].started_at : started_at_;
  };
  for (const VolumeConfig& v : config_.volumes) {
    last_scheduled_[v.name] = anchor(v.name);
  }
  for (const GroupConfig& g : config_.groups) {
    last_scheduled_[g.name] = anchor(g.members.front());
  }
  return interrupted;
}

absl::StatusOr<std::vector<int64_t>> Agent::Submit(BackupPlan plan) {
  // mu_ is held from the busy check to the submission, so no other caller
  // can take a member in between and the rows Prepare writes always get a
  // job.
  std::lock_guard lock(mu_);
  std::vector<std::string> members;
  for (const VolumeConfig& v : plan.request.volumes) {
    members.push_back(v.name);
    if (runner_.Busy(v.name)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "volume '", v.name,
          "' already has a run queued or in progress; wait for it ('cbtctl "
          "runs --active') or cancel it ('cbtctl cancel RUN')"));
    }
  }
  absl::StatusOr<std::vector<int64_t>> ids = orchestrator_.Prepare(plan);
  if (!ids.ok()) return ids.status();
  auto shared_plan = std::make_shared<BackupPlan>(std::move(plan));
  const std::vector<int64_t> run_ids = *ids;
  absl::StatusOr<JobRunner::Submitted> job = runner_.Submit(
      members, [this, shared_plan, run_ids](RunControl& control) {
        orchestrator_.Execute(*shared_plan, run_ids, control).IgnoreError();
        std::lock_guard job_lock(mu_);
        for (int64_t id : run_ids) live_.erase(id);
      });
  if (!job.ok()) {
    RunOutcome refused;
    refused.result = RunResult::kCancelled;
    refused.step = kStepQueued;
    refused.error = std::string(job.status().message());
    for (int64_t id : run_ids) {
      store_.FinishRun(id, refused, clock_()).IgnoreError();
    }
    return job.status();
  }
  for (int64_t id : run_ids) live_[id] = LiveRun{job->id, job->control};
  return run_ids;
}

absl::StatusOr<std::vector<int64_t>> Agent::BackupNow(
    const std::string& target, bool full, const std::string& trigger,
    const std::map<std::string, std::string>& change_lists) {
  absl::StatusOr<BackupPlan> plan;
  {
    std::lock_guard lock(mu_);
    plan = PlanBackup(config_, target, full, trigger);
  }
  if (!plan.ok()) return plan.status();
  if (absl::Status s = AttachChangeLists(*plan, change_lists); !s.ok()) {
    return s;
  }
  return Submit(std::move(*plan));
}

absl::StatusOr<ConsistencyPointResult> Agent::TakeConsistencyPoint(
    const std::string& target, bool backup, bool full,
    const std::map<std::string, std::string>& change_lists) {
  absl::StatusOr<BackupPlan> plan;
  {
    std::lock_guard lock(mu_);
    plan = PlanBackup(config_, target, full, "hypervisor");
  }
  if (!plan.ok()) return plan.status();
  if (absl::Status s = AttachChangeLists(*plan, change_lists); !s.ok()) {
    return s;
  }
  ConsistencyPointResult result;
  if (!backup) {
    // Not a job: it holds no volume for longer than the point itself, but
    // it must not race a job's snapshot of the same volume either.
    for (const VolumeConfig& v : plan->request.volumes) {
      if (runner_.Busy(v.name)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "volume '", v.name, "' has a run in progress; try again after it"));
      }
    }
    absl::StatusOr<std::vector<SnapshotRef>> snaps =
        orchestrator_.TakeConsistencyPointOnly(plan->request);
    if (!snaps.ok()) return snaps.status();
    result.snapshots = *snaps;
    return result;
  }
  auto promise = std::make_shared<
      std::promise<absl::StatusOr<std::vector<SnapshotRef>>>>();
  std::future<absl::StatusOr<std::vector<SnapshotRef>>> point =
      promise->get_future();
  plan->on_consistency_point =
      [promise](const absl::StatusOr<std::vector<SnapshotRef>>& r) {
        promise->set_value(r);
      };
  absl::StatusOr<std::vector<int64_t>> ids = Submit(std::move(*plan));
  if (!ids.ok()) return ids.status();
  result.run_ids = *ids;
  // The job may wait for a free slot first; the caller asked for "now", so
  // it waits too (cbtctl shows the run as queued meanwhile).
  absl::StatusOr<std::vector<SnapshotRef>> snaps = point.get();
  if (!snaps.ok()) return snaps.status();
  result.snapshots = *snaps;
  return result;
}

const Schedule* Agent::ScheduleLocked(const std::string& target,
                                      absl::Duration& delay) const {
  const std::optional<Schedule>* schedule = nullptr;
  if (const VolumeConfig* v = config_.FindVolume(target)) {
    schedule = &v->schedule;
    delay = v->randomized_delay;
  } else if (const GroupConfig* g = config_.FindGroup(target)) {
    schedule = &g->schedule;
    delay = g->randomized_delay;
  }
  if (schedule == nullptr || !schedule->has_value()) return nullptr;
  return &**schedule;
}

std::optional<absl::Time> Agent::NextSlotLocked(
    const std::string& target) const {
  absl::Duration delay;
  const Schedule* schedule = ScheduleLocked(target, delay);
  if (schedule == nullptr) return std::nullopt;
  auto it = last_scheduled_.find(target);
  const absl::Time anchor =
      it == last_scheduled_.end() ? started_at_ : it->second;
  const absl::Time next = schedule->NextRun(anchor, tz_);
  // A calendar expression whose dates are all past never runs again.
  if (next == absl::InfiniteFuture()) return std::nullopt;
  return next;
}

std::optional<absl::Time> Agent::NextRunLocked(
    const std::string& target) const {
  std::optional<absl::Time> slot = NextSlotLocked(target);
  auto drawn = delays_.find(target);
  if (slot && drawn != delays_.end() && drawn->second.slot == *slot) {
    return *slot + drawn->second.delay;
  }
  return slot;
}

absl::Duration Agent::DelayLocked(const std::string& target, absl::Time slot,
                                  absl::Duration max) {
  if (max <= absl::ZeroDuration()) return absl::ZeroDuration();
  DrawnDelay& drawn = delays_[target];
  if (drawn.slot != slot || drawn.max != max) {
    const absl::Duration d = hooks_.random_delay(max);
    drawn = DrawnDelay{.slot = slot,
                       .max = max,
                       .delay = std::clamp(d, absl::ZeroDuration(), max)};
  }
  return drawn.delay;
}

std::optional<Agent::DueSlot> Agent::TakeDueLocked(const std::string& target,
                                                   absl::Time now) {
  absl::Duration max_delay;
  const Schedule* schedule = ScheduleLocked(target, max_delay);
  std::optional<absl::Time> slot = NextSlotLocked(target);
  if (schedule == nullptr || !slot || *slot > now) return std::nullopt;
  if (*slot + DelayLocked(target, *slot, max_delay) > now) return std::nullopt;
  DueSlot due;
  due.target = target;
  due.slot = *slot;
  // Run once for the latest slot that has passed; the earlier ones are
  // missed. Anchoring there keeps an interval's phase and never anchors in
  // the past twice.
  for (absl::Time next = schedule->NextRun(*slot, tz_); next <= now;
       next = schedule->NextRun(next, tz_)) {
    if (due.missed == 0) due.first_missed = due.slot;
    due.last_missed = due.slot;
    due.slot = next;
    if (++due.missed == kMaxCountedSlots) {
      due.slot = now;
      break;
    }
  }
  last_scheduled_[target] = due.slot;
  return due;
}

std::string Agent::FormatSlot(absl::Time t) const {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", t, tz_);
}

std::vector<VolumeStatus> Agent::ListVolumes() {
  std::lock_guard lock(mu_);
  std::vector<VolumeStatus> out;
  for (const VolumeConfig& v : config_.volumes) {
    VolumeStatus s;
    s.config = v;
    for (const GroupConfig& g : config_.groups) {
      for (const std::string& m : g.members) {
        if (m == v.name) s.group = g.name;
      }
    }
    s.busy = runner_.Busy(v.name);
    if (auto t = store_.GetTracking(v.name); t.ok()) s.tracking = *t;
    if (auto runs = store_.ListRuns(v.name, 1); runs.ok() && !runs->empty()) {
      s.last_run = (*runs)[0];
    }
    s.next_run = NextRunLocked(v.name);
    if (!s.group.empty()) {
      std::optional<absl::Time> g = NextRunLocked(s.group);
      if (g && (!s.next_run || *g < *s.next_run)) s.next_run = g;
    }
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<RunView>> Agent::ListRuns(const std::string& volume,
                                                     int limit,
                                                     bool active_only) {
  absl::StatusOr<std::vector<RunRecord>> runs =
      store_.ListRuns(volume, limit > 0 ? limit : 20);
  if (!runs.ok()) return runs.status();
  std::lock_guard lock(mu_);
  std::vector<RunView> out;
  for (RunRecord& r : *runs) {
    if (active_only && r.result != RunResult::kRunning) continue;
    RunView view;
    if (auto it = live_.find(r.id); it != live_.end()) {
      // A group job's members may run at once: each row gets its own.
      view.progress = it->second.control->progress(r.volume);
    }
    view.record = std::move(r);
    out.push_back(std::move(view));
  }
  return out;
}

absl::Status Agent::Cancel(int64_t run_id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(run_id);
  if (it == live_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "run ", run_id,
        " is not queued or running; 'cbtctl runs --active' lists those"));
  }
  return runner_.Cancel(it->second.job);
}

AgentStatus Agent::Status() {
  std::lock_guard lock(mu_);
  AgentStatus s;
  s.started_at = started_at_;
  s.config_path = config_.path;
  s.receiver = config_.receiver.address;
  s.running_jobs = runner_.running();
  s.queued_jobs = runner_.queued();
  s.volumes = static_cast<int>(config_.volumes.size());
  s.groups = static_cast<int>(config_.groups.size());
  return s;
}

std::string Agent::StatusLine() {
  std::lock_guard lock(mu_);
  std::string busy;
  for (const auto& [id, live] : live_) {
    const RunProgress p = live.control->progress();
    if (p.volume.empty() || busy.find(p.volume + " ") != std::string::npos) {
      continue;
    }
    absl::StrAppend(&busy, busy.empty() ? "" : ", ", p.volume, " ", p.step);
    if (p.total_bytes > 0) {
      absl::StrAppend(&busy, " ", p.done_bytes * 100 / p.total_bytes, "%");
    }
  }
  const int queued = runner_.queued();
  if (busy.empty() && queued == 0) {
    return absl::StrCat("idle; ", config_.volumes.size(), " volume(s)");
  }
  return absl::StrCat("backing up: ", busy.empty() ? "starting" : busy,
                      queued > 0 ? absl::StrCat("; ", queued, " queued") : "");
}

void Agent::Tick(absl::Time now) {
  std::vector<DueSlot> due;
  {
    std::lock_guard lock(mu_);
    std::vector<std::string> targets;
    for (const VolumeConfig& v : config_.volumes) targets.push_back(v.name);
    for (const GroupConfig& g : config_.groups) targets.push_back(g.name);
    for (const std::string& t : targets) {
      if (std::optional<DueSlot> d = TakeDueLocked(t, now)) {
        due.push_back(std::move(*d));
      }
    }
  }
  // Outside mu_: BackupNow takes it, and the log may block.
  for (const DueSlot& d : due) {
    if (d.missed > 0) {
      hooks_.warn(absl::StrCat(
          "schedule of ", d.target, ": ", d.missed, " slot(s) from ",
          FormatSlot(d.first_missed), " to ", FormatSlot(d.last_missed),
          d.missed == kMaxCountedSlots ? " (or more)" : "",
          " were missed (cbtd was not running or the host was suspended); "
          "backing up once now for the slot at ",
          FormatSlot(d.slot)));
    }
    absl::StatusOr<std::vector<int64_t>> ids =
        BackupNow(d.target, /*full=*/false, "schedule");
    if (!ids.ok()) {
      hooks_.warn(absl::StrCat(
          "schedule of ", d.target, ": skipped the slot at ",
          FormatSlot(d.slot),
          " (the next slot tries again): ", ids.status().message()));
    }
  }
}

void Agent::Reload(Config config) {
  std::lock_guard lock(mu_);
  runner_.SetMaxConcurrent(config.max_concurrent_runs);
  for (const VolumeConfig& v : config.volumes) {
    last_scheduled_.try_emplace(v.name, clock_());
  }
  for (const GroupConfig& g : config.groups) {
    last_scheduled_.try_emplace(g.name, clock_());
  }
  config_ = std::move(config);
}

absl::Status Agent::CheckVaultVolume(const std::string& volume) {
  {
    std::lock_guard lock(mu_);
    if (config_.FindVolume(volume) == nullptr) {
      return absl::NotFoundError(absl::StrCat("no [volume.", volume, "] in ",
                                              config_.path,
                                              "; 'cbtctl volumes' lists them"));
    }
  }
  if (ports_.vault == nullptr) {
    return absl::UnavailableError(
        "this cbtd has no receiver to read versions from; set [receiver]");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<VersionView>> Agent::ListVersions(
    const std::string& target) {
  std::vector<std::string> members;
  {
    std::lock_guard lock(mu_);
    if (const GroupConfig* g = config_.FindGroup(target)) members = g->members;
  }
  if (members.empty()) {
    if (absl::Status s = CheckVaultVolume(target); !s.ok()) return s;
    return ports_.vault->ListVersions(target);
  }
  // A group: its members' versions that belong to its group versions
  // (the receiver lists only committed ones), by group version.
  std::vector<VersionView> out;
  for (const std::string& member : members) {
    if (absl::Status s = CheckVaultVolume(member); !s.ok()) return s;
    absl::StatusOr<std::vector<VersionView>> versions =
        ports_.vault->ListVersions(member);
    if (!versions.ok()) return versions.status();
    for (VersionView& v : *versions) {
      if (v.group == target) out.push_back(std::move(v));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.group_version_id < b.group_version_id;
  });
  return out;
}

absl::StatusOr<RestoreOutcome> Agent::Restore(const RestoreRequest& request) {
  if (absl::Status s = CheckVaultVolume(request.volume); !s.ok()) return s;
  if (request.version.empty()) {
    return absl::InvalidArgumentError("restore needs a version");
  }
  RestoreRequest resolved = request;
  if (absl::Status s = ResolveRestoreTarget(resolved); !s.ok()) return s;
  return RunRestoreJob(std::move(resolved));
}

absl::Status Agent::ResolveRestoreTarget(RestoreRequest& request) {
  std::lock_guard lock(mu_);
  const VolumeConfig* own = config_.FindVolume(request.volume);
  if (own == nullptr) {  // removed by a reload since CheckVaultVolume
    return absl::NotFoundError(
        absl::StrCat("no [volume.", request.volume, "] in ", config_.path));
  }
  if (request.in_place) {
    if (!request.from_version.empty()) {
      return absl::InvalidArgumentError(
          "a rollback compares the volume itself with the version; it takes "
          "no base version (--from)");
    }
    if (!request.target_path.empty() && request.target_path != own->path &&
        !common::SameFileOrDevice(own->path, request.target_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("a rollback writes to volume '", own->name, "' itself (",
                       own->path, "), not to ", request.target_path));
    }
    request.target_path = own->path;
    request.state_path.clear();
    return absl::OkStatus();
  }
  if (request.target_path.empty()) {
    return absl::InvalidArgumentError(
        "restore needs a target (--target), or --in-place to roll the "
        "volume itself back");
  }
  // By device or inode, not by name: /dev/mapper/VG-LV and /dev/dm-N are
  // /dev/VG/LV too.
  for (const VolumeConfig& v : config_.volumes) {
    if (v.path == request.target_path ||
        common::SameFileOrDevice(v.path, request.target_path)) {
      return absl::FailedPreconditionError(absl::StrCat(
          request.target_path, " is volume '", v.name, "' (", v.path,
          ") that cbtd backs up; restore to a new LV (lvcreate) and swap "
          "it in, or roll the volume back with --in-place"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RestoreOutcome> Agent::RunRestoreJob(RestoreRequest request) {
  RunRecord row;
  row.volume = request.volume;
  row.full = !request.in_place && request.from_version.empty();
  row.trigger = request.in_place ? kTriggerRollback : kTriggerRestore;
  row.started_at = clock_();
  row.step = kStepRestore;
  row.base_version = request.from_version;
  absl::StatusOr<int64_t> id = store_.StartRun(row);
  if (!id.ok()) return id.status();
  auto done = std::make_shared<std::promise<absl::StatusOr<RestoreOutcome>>>();
  std::future<absl::StatusOr<RestoreOutcome>> outcome = done->get_future();
  {
    // As Submit: a job over the volume, so no backup of it runs meanwhile.
    std::lock_guard lock(mu_);
    absl::StatusOr<JobRunner::Submitted> job = runner_.Submit(
        {request.volume}, [this, request, run = *id, done](RunControl& c) {
          done->set_value(ExecuteRestore(request, run, c));
          std::lock_guard job_lock(mu_);
          live_.erase(run);
        });
    if (!job.ok()) {
      RunOutcome refused;
      refused.result = RunResult::kCancelled;
      refused.step = kStepQueued;
      refused.error = std::string(job.status().message());
      store_.FinishRun(*id, refused, clock_()).IgnoreError();
      return job.status();
    }
    live_[*id] = LiveRun{job->id, job->control};
  }
  return outcome.get();
}

absl::StatusOr<RestoreOutcome> Agent::ExecuteRestore(RestoreRequest request,
                                                     int64_t run,
                                                     RunControl& control) {
  control.SetStep(request.volume, kStepRestore);
  RunOutcome out;
  out.step = kStepRestore;
  out.base_version = request.from_version;
  out.version_id = request.version;
  absl::StatusOr<RestoreOutcome> r;
  if (control.cancelled()) {
    r = absl::CancelledError("the restore was cancelled before it started");
  } else {
    request.progress = [&control](uint64_t done, uint64_t total) {
      control.SetBytes(done, total);
      return !control.cancelled();
    };
    r = ports_.vault->Restore(request);
  }
  if (r.ok()) out.bytes_sent = r->bytes_written;
  if (r.ok() && request.in_place) {
    if (absl::Status s = RestartChain(request, run, out); !s.ok()) r = s;
  }
  if (r.ok()) {
    out.result = RunResult::kSucceeded;
  } else {
    out.result = absl::IsCancelled(r.status()) ? RunResult::kCancelled
                                               : RunResult::kFailed;
    out.error = std::string(r.status().message());
  }
  store_.FinishRun(run, out, clock_()).IgnoreError();
  return r;
}

absl::Status Agent::RestartChain(const RestoreRequest& request, int64_t run,
                                 const RunOutcome& outcome) {
  absl::StatusOr<std::optional<TrackingRecord>> t =
      store_.GetTracking(request.volume);
  if (!t.ok()) return t.status();
  if (!t->has_value()) return absl::OkStatus();  // never backed up
  TrackingRecord record = **t;
  nlohmann::json blob = nlohmann::json::parse(record.state_blob, nullptr,
                                              /*allow_exceptions=*/false);
  if (!blob.is_object()) blob = nlohmann::json::object();
  blob[kRolledBackToKey] = request.version;
  record.state_blob = blob.dump();
  RunOutcome committed = outcome;
  committed.result = RunResult::kSucceeded;
  if (absl::Status s = store_.CommitRun(run, committed, record); !s.ok()) {
    return absl::Status(
        s.code(),
        absl::StrCat("the volume was rolled back to ", request.version,
                     " but its tracking state could not be reset (",
                     s.message(),
                     "): run the next backup with --full before trusting "
                     "an incremental"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VerifyOutcome> Agent::Verify(const std::string& volume,
                                            const std::string& version) {
  if (absl::Status s = CheckVaultVolume(volume); !s.ok()) return s;
  return ports_.vault->Verify(volume, version);
}

void Agent::Shutdown(bool cancel) { runner_.Shutdown(cancel); }

}  // namespace cbtd::agent
