#include "agent/backup_run.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "tests/agent/fake_ports.h"
#include "tests/common/temp_dir.h"

namespace cbtd::agent {
namespace {

using ::testing::ElementsAre;
using testing::FakeRetention;
using testing::FakeSender;
using testing::FakeSnapshots;
using testing::FakeTracker;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kConfig[] = R"(
[receiver]
address = unix:/run/cbt-receiver.sock
[volume.a]
path = /dev/vg/a
keep_last = 3
[volume.b]
path = /dev/vg/b
[group.g]
members = a b
pre_hook = true
frozen_hook = sync
freeze = no
)";

class BackupRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = StateStore::Open(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto config = ParseConfig("cbtd.conf", kConfig);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    orchestrator_ = std::make_unique<BackupOrchestrator>(
        BackupPorts{&snapshots_, &tracker_, &sender_, &retention_}, *store_,
        [this] { return now_ += absl::Seconds(1); });
  }

  // Runs a backup of `target`; returns the member runs as recorded.
  std::vector<RunRecord> Backup(const std::string& target, bool full = false) {
    absl::StatusOr<BackupPlan> plan = PlanBackup(config_, target, full, "api");
    EXPECT_TRUE(plan.ok()) << plan.status();
    absl::StatusOr<std::vector<int64_t>> ids = orchestrator_->Prepare(*plan);
    EXPECT_TRUE(ids.ok()) << ids.status();
    RunControl control;
    orchestrator_->Execute(*plan, *ids, control).IgnoreError();
    std::vector<RunRecord> runs;
    for (int64_t id : *ids) runs.push_back(*store_->GetRun(id));
    return runs;
  }

  std::optional<TrackingRecord> Tracking(const std::string& volume) {
    return *store_->GetTracking(volume);
  }

  // Public so failure rows can reach the fakes.
 public:
  const test::TempDir tmp_{"cbtd-run-", "/tmp"};
  const std::string dir_ = tmp_.path();
  absl::Time now_ = absl::FromUnixSeconds(1000000);
  std::unique_ptr<StateStore> store_;
  Config config_;
  FakeSnapshots snapshots_;
  FakeTracker tracker_;
  FakeSender sender_;
  FakeRetention retention_;
  std::unique_ptr<BackupOrchestrator> orchestrator_;
};

TEST_F(BackupRunTest, FirstThenIncrementalRotatesTheBase) {
  std::vector<RunRecord> first = Backup("a");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].result, RunResult::kSucceeded) << first[0].error;
  EXPECT_EQ(first[0].step, kStepDone);
  EXPECT_EQ(first[0].version_id, "a-v1");
  EXPECT_EQ(first[0].base_version, "");  // a full
  ASSERT_TRUE(Tracking("a").has_value());
  const std::string base1 = Tracking("a")->base_snapshot;
  EXPECT_EQ(snapshots_.Existing(), std::set<std::string>{base1});

  std::vector<RunRecord> second = Backup("a");
  EXPECT_EQ(second[0].result, RunResult::kSucceeded) << second[0].error;
  EXPECT_EQ(second[0].base_version, "a-v1");
  EXPECT_EQ(second[0].bytes_read, 8192u);
  const std::string base2 = Tracking("a")->base_snapshot;
  EXPECT_NE(base1, base2);
  EXPECT_EQ(Tracking("a")->state_blob, "state-after-" + base2);
  // The old base is gone, only the new one is left.
  EXPECT_EQ(snapshots_.Existing(), std::set<std::string>{base2});
  EXPECT_EQ(retention_.applied, (std::vector<std::string>{"a", "a"}));
}

// A volume whose next run needs no base snapshot (hash) keeps none: the
// run's snapshot is removed once it is done, and so is a base an earlier
// method kept.
TEST_F(BackupRunTest, NoBaseKeptWhenTheTrackerNeedsNone) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  ASSERT_EQ(snapshots_.Existing().size(), 1u);  // thin-delta keeps its base

  tracker_.keep_snapshot = false;
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded) << runs[0].error;
  EXPECT_EQ(runs[0].version_id, "a-v2");
  EXPECT_EQ(Tracking("a")->base_version, "a-v2");
  EXPECT_EQ(Tracking("a")->base_snapshot, "");
  EXPECT_TRUE(snapshots_.Existing().empty());

  runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded) << runs[0].error;
  EXPECT_EQ(runs[0].base_version, "a-v2") << "still an incremental";
  EXPECT_EQ(runs[0].step, kStepDone);
  EXPECT_TRUE(snapshots_.Existing().empty());

  // The removal is part of the run: a failure is a note, not a lost backup.
  snapshots_.remove_error = absl::UnavailableError("device busy");
  runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[0].step, kStepRotateBase);
  EXPECT_THAT(runs[0].error, HasSubstr("not removed"));
  EXPECT_THAT(runs[0].error, HasSubstr("device busy"));
  EXPECT_EQ(snapshots_.Existing().size(), 1u) << "left for the next start";
  EXPECT_EQ(Tracking("a")->base_snapshot, "");
}

// A failure at each step before the commit leaves the base and the state
// exactly as they were, and the history names the step.
struct FailureRow {
  const char* step;
  std::function<void(BackupRunTest&)> inject;
};

TEST_F(BackupRunTest, FailureBeforeCommitLeavesTheBaseIntact) {
  const FailureRow rows[] = {
      {kStepConsistencyPoint,
       [](BackupRunTest& t) {
         t.snapshots_.take_error = absl::UnavailableError("freeze timed out");
       }},
      {kStepChangedSet,
       [](BackupRunTest& t) {
         t.tracker_.error = absl::DataLossError("thin_delta failed");
       }},
      {kStepSend,
       [](BackupRunTest& t) {
         t.sender_.error = absl::UnavailableError("receiver unreachable");
       }},
  };
  for (const FailureRow& row : rows) {
    SCOPED_TRACE(row.step);
    snapshots_.take_error = absl::OkStatus();
    tracker_.error = absl::OkStatus();
    sender_.error = absl::OkStatus();
    ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
    const TrackingRecord before = *Tracking("a");
    const std::set<std::string> snaps_before = snapshots_.Existing();

    row.inject(*this);
    std::vector<RunRecord> runs = Backup("a");
    EXPECT_EQ(runs[0].result, RunResult::kFailed);
    EXPECT_EQ(runs[0].step, row.step);
    EXPECT_FALSE(runs[0].error.empty());
    EXPECT_TRUE(runs[0].ended_at.has_value());
    const TrackingRecord after = *Tracking("a");
    EXPECT_EQ(after.base_snapshot, before.base_snapshot);
    EXPECT_EQ(after.base_version, before.base_version);
    EXPECT_EQ(after.state_blob, before.state_blob);
    // The base survives and the failed run's snapshot is not leaked.
    EXPECT_EQ(snapshots_.Existing(), snaps_before);
  }
}

TEST_F(BackupRunTest, StateCommitFailureKeepsTheOldBase) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  const TrackingRecord before = *Tracking("a");
  // After the receiver committed, the local commit fails (as on a full
  // disk): a trigger makes SQLite abort the tracking write.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/state.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TRIGGER full_disk BEFORE INSERT ON volumes "
                         "BEGIN SELECT RAISE(ABORT, 'database or disk is "
                         "full'); END;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kFailed);
  EXPECT_EQ(runs[0].step, kStepCommitState);
  EXPECT_THAT(runs[0].error, HasSubstr("disk is full"));
  EXPECT_EQ(sender_.sends.load(), 2);  // the receiver did get the version
  const TrackingRecord after = *Tracking("a");
  EXPECT_EQ(after.base_snapshot, before.base_snapshot);
  EXPECT_EQ(after.base_version, before.base_version);
  // The new snapshot was not kept; the old base was not removed.
  EXPECT_EQ(snapshots_.Existing(), std::set<std::string>{before.base_snapshot});
}

TEST_F(BackupRunTest, CancelledSendKeepsTheBase) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  const TrackingRecord before = *Tracking("a");
  sender_.during_send = [](RunControl& c) { c.Cancel(); };
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kCancelled);
  EXPECT_EQ(runs[0].step, kStepSend);
  EXPECT_EQ(Tracking("a")->base_version, before.base_version);
  EXPECT_EQ(snapshots_.Existing(), std::set<std::string>{before.base_snapshot});
}

TEST_F(BackupRunTest, ReceiverWithoutTheBaseGetsAFullInTheSameRun) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  const std::string old_base = Tracking("a")->base_snapshot;
  sender_.error_with_base = absl::NotFoundError("receiver has no version a-v1");
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded) << runs[0].error;
  EXPECT_EQ(runs[0].method, "hash");
  EXPECT_THAT(runs[0].fallback_reason,
              HasSubstr("the receiver does not hold base version a-v1"));
  EXPECT_EQ(runs[0].base_version, "");
  // Tried on the base, then sent against nothing.
  EXPECT_THAT(sender_.base_versions, ElementsAre("", "a-v1", ""));
  // The chain restarts from this run's snapshot and version.
  EXPECT_EQ(Tracking("a")->base_version, runs[0].version_id);
  EXPECT_NE(Tracking("a")->base_snapshot, old_base);
  EXPECT_EQ(snapshots_.Existing().size(), 1u);
}

// A base the sender can't continue (made under another key) fails the run;
// no full is sent in its place.
TEST_F(BackupRunTest, BaseUnderAnotherKeyFailsTheRunWithoutAFull) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  const TrackingRecord before = *Tracking("a");
  sender_.error_with_base = absl::FailedPreconditionError(
      "cannot continue the backups of a: its base a-v1 was made with key "
      "1111111111111111 but the key file holds key 2222222222222222");
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kFailed);
  EXPECT_EQ(runs[0].step, kStepSend);
  EXPECT_THAT(runs[0].error, HasSubstr("1111111111111111"));
  EXPECT_THAT(sender_.base_versions, ElementsAre("", "a-v1"));
  EXPECT_EQ(Tracking("a")->base_version, before.base_version);
}

TEST_F(BackupRunTest, CleanupFailuresAfterCommitDoNotUndoTheBackup) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  retention_.error = absl::UnavailableError("receiver busy");
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[0].step, kStepRetention);
  EXPECT_THAT(runs[0].error, HasSubstr("retention not applied"));
  EXPECT_EQ(Tracking("a")->base_version, "a-v2");
}

TEST_F(BackupRunTest, FallbackReasonIsRecorded) {
  tracker_.fallback_reason = "base snapshot a_cbtd_7 is missing";
  std::vector<RunRecord> runs = Backup("a");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[0].method, "hash");
  EXPECT_EQ(runs[0].fallback_reason, "base snapshot a_cbtd_7 is missing");
}

TEST_F(BackupRunTest, GroupTakesOneConsistencyPointAndMembersFailAlone) {
  std::vector<RunRecord> runs = Backup("g");
  ASSERT_EQ(runs.size(), 2u);
  ASSERT_EQ(snapshots_.requests.size(), 1u);
  EXPECT_EQ(snapshots_.requests[0].group, "g");
  EXPECT_EQ(snapshots_.requests[0].volumes.size(), 2u);
  EXPECT_EQ(snapshots_.requests[0].pre_hooks, std::vector<std::string>{"true"});
  EXPECT_EQ(snapshots_.requests[0].frozen_hooks,
            std::vector<std::string>{"sync"});
  EXPECT_FALSE(snapshots_.requests[0].freeze);
  EXPECT_EQ(runs[0].group, "g");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[1].result, RunResult::kSucceeded);

  // b's send fails; a still commits.
  const std::string b_base = Tracking("b")->base_snapshot;
  sender_.volume_errors["b"] = absl::UnavailableError("cut");
  runs = Backup("g");
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[1].result, RunResult::kFailed);
  EXPECT_EQ(runs[1].step, kStepSend);
  EXPECT_EQ(Tracking("b")->base_snapshot, b_base);
  EXPECT_TRUE(snapshots_.Existing().contains(b_base));
  EXPECT_EQ(snapshots_.Existing().size(), 2u);  // a's new base, b's old
}

TEST_F(BackupRunTest, AGroupRunCommitsOneGroupVersionOfEveryMember) {
  std::vector<RunRecord> runs = Backup("g");
  ASSERT_EQ(sender_.group_points.size(), 1u);
  const GroupPoint& point = sender_.group_points[0];
  EXPECT_EQ(point.group, "g");
  // The point's instant, written as version ids are; every member is sent
  // as its member and dated at it.
  EXPECT_EQ(point.group_version_id, "19700112T134642.000Z");
  EXPECT_EQ(point.created_unix_ms, 1000002000);
  EXPECT_THAT(sender_.group_tags,
              UnorderedElementsAre("a g@19700112T134642.000Z 1000002000",
                                   "b g@19700112T134642.000Z 1000002000"));
  ASSERT_EQ(point.members.size(), 2u);
  EXPECT_EQ(point.members[0].volume, "a");
  EXPECT_EQ(point.members[0].version_id, runs[0].version_id);
  EXPECT_EQ(point.members[1].version_id, runs[1].version_id);
  EXPECT_EQ(point.members[1].root_hash.size(), 64u);
  EXPECT_EQ(runs[0].step, kStepDone);
  // b has no retention rule, so the group keeps every point; a's own rule
  // prunes a's versions backed up on their own.
  EXPECT_TRUE(retention_.groups_applied.empty());
  EXPECT_THAT(retention_.applied, ElementsAre("a"));

  // A volume on its own is no group's member.
  Backup("a");
  EXPECT_EQ(sender_.group_tags.back(), "a @ 0");
  EXPECT_EQ(sender_.group_points.size(), 1u);
}

TEST_F(BackupRunTest, AFailedMemberLeavesNoGroupVersionAndTheRetryCommitsOne) {
  sender_.volume_errors["b"] = absl::UnavailableError("receiver went away");
  std::vector<RunRecord> runs = Backup("g");
  EXPECT_TRUE(sender_.group_points.empty());
  EXPECT_EQ(runs[1].result, RunResult::kFailed);
  // a's own version is stored and is its next base, but the run says the
  // point was not committed, and nothing is pruned for it.
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[0].step, kStepGroupCommit);
  EXPECT_THAT(runs[0].error, HasSubstr("was not committed"));
  EXPECT_THAT(runs[0].error, HasSubstr("receiver went away"));
  EXPECT_EQ(Tracking("a")->base_version, runs[0].version_id);
  EXPECT_TRUE(retention_.applied.empty());
  EXPECT_TRUE(retention_.groups_applied.empty());

  const std::string a_pending = runs[0].version_id;
  sender_.volume_errors.clear();
  runs = Backup("g");
  ASSERT_EQ(sender_.group_points.size(), 1u);
  EXPECT_EQ(runs[0].step, kStepDone);
  EXPECT_EQ(sender_.group_points[0].members.size(), 2u);
  // a's retry is an incremental on its pending member: stored data reused.
  EXPECT_EQ(runs[0].base_version, a_pending);
  // b's first version is a full.
  EXPECT_THAT(sender_.base_versions, ::testing::Contains(""));
}

TEST_F(BackupRunTest, AGroupCommitThatFailsIsReportedOnEveryMember) {
  sender_.group_error = absl::UnavailableError("receiver restarting");
  std::vector<RunRecord> runs = Backup("g");
  for (const RunRecord& r : runs) {
    EXPECT_EQ(r.result, RunResult::kSucceeded) << r.volume;
    EXPECT_EQ(r.step, kStepGroupCommit) << r.volume;
    EXPECT_THAT(r.error, HasSubstr("receiver restarting")) << r.volume;
    EXPECT_THAT(r.error, HasSubstr("the next run of the group commits one"));
  }
  absl::StatusOr<BackupPlan> plan = PlanBackup(config_, "g", false, "api");
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<std::vector<int64_t>> ids = orchestrator_->Prepare(*plan);
  ASSERT_TRUE(ids.ok());
  RunControl control;
  absl::Status s = orchestrator_->Execute(*plan, *ids, control);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  // Watchers see each member's recorded step, not a bare "done".
  EXPECT_EQ(control.progress("a").step, kStepGroupCommit);
}

TEST_F(BackupRunTest, AGroupIsPrunedByOneRuleAfterItsPointIsCommitted) {
  auto config = ParseConfig("cbtd.conf", R"(
[receiver]
address = unix:/run/cbt-receiver.sock
[volume.a]
path = /dev/vg/a
keep_last = 3
keep_daily = 1
[volume.b]
path = /dev/vg/b
keep_last = 5
[group.g]
members = a b
freeze = no
)");
  ASSERT_TRUE(config.ok()) << config.status();
  config_ = *config;
  Backup("g");
  // The group's versions by one rule, the largest of each count...
  ASSERT_THAT(retention_.groups_applied, ElementsAre("g"));
  EXPECT_EQ(retention_.group_policies[0].keep_last, 5);
  EXPECT_EQ(retention_.group_policies[0].keep_daily, 1);
  // ...and each member's own versions by its own.
  ASSERT_THAT(retention_.applied, UnorderedElementsAre("a", "b"));
  for (size_t i = 0; i < retention_.applied.size(); ++i) {
    EXPECT_EQ(retention_.policies[i].keep_last,
              retention_.applied[i] == "a" ? 3 : 5);
  }
  // A failed group retention is a note on every member's run.
  retention_.error = absl::UnavailableError("receiver busy");
  for (const RunRecord& r : Backup("g")) {
    EXPECT_EQ(r.result, RunResult::kSucceeded);
    EXPECT_EQ(r.step, kStepRetention);
    EXPECT_THAT(r.error, HasSubstr("group retention not applied"));
  }
}

// Members overlap when parallel allows it; parallel = 1 sends one after
// the other.
TEST_F(BackupRunTest, GroupMembersAreSentInParallelUpToTheLimit) {
  const auto most_at_once = [this](int parallel) {
    auto config = ParseConfig(
        "cbtd.conf", absl::StrCat(kConfig, "parallel = ", parallel, "\n"));
    EXPECT_TRUE(config.ok()) << config.status();
    config_ = *config;
    std::mutex mu;
    std::condition_variable cv;
    int inside = 0, most = 0;
    sender_.during_send = [&](RunControl&) {
      std::unique_lock lock(mu);
      most = std::max(most, ++inside);
      cv.notify_all();
      // Wait (bounded) for a partner, so an overlap cannot be missed.
      cv.wait_for(lock, std::chrono::milliseconds(parallel > 1 ? 5000 : 200),
                  [&] { return most > 1; });
      --inside;
    };
    for (const RunRecord& r : Backup("g")) {
      EXPECT_EQ(r.result, RunResult::kSucceeded) << r.volume << ": " << r.error;
    }
    sender_.during_send = nullptr;
    return most;
  };
  EXPECT_EQ(most_at_once(2), 2);
  EXPECT_EQ(sender_.group_points.size(), 1u);
  EXPECT_EQ(most_at_once(1), 1);
  EXPECT_EQ(sender_.group_points.size(), 2u);
}

TEST_F(BackupRunTest, MembersSentAtOnceShareTheBandwidthLimit) {
  auto config = ParseConfig("cbtd.conf", absl::StrCat(kConfig, R"(
[agent]
bandwidth_limit = 10M
)"));
  ASSERT_TRUE(config.ok()) << config.status();
  config_ = *config;
  std::vector<uint64_t> limits;
  std::mutex mu;
  sender_.during_request = [&](const SendRequest& r) {
    std::lock_guard lock(mu);
    limits.push_back(r.bandwidth_limit_bytes_per_sec);
  };
  Backup("g");
  EXPECT_THAT(limits, ElementsAre(5u << 20, 5u << 20));
  limits.clear();
  Backup("a");
  EXPECT_THAT(limits, ElementsAre(10u << 20));
}

TEST_F(BackupRunTest, FullIgnoresTheBase) {
  ASSERT_EQ(Backup("a")[0].result, RunResult::kSucceeded);
  std::vector<RunRecord> runs = Backup("a", /*full=*/true);
  EXPECT_EQ(runs[0].result, RunResult::kSucceeded);
  EXPECT_EQ(runs[0].base_version, "");
  EXPECT_EQ(runs[0].bytes_read, 1u << 20);
}

TEST_F(BackupRunTest, UnknownTargetIsNotFound) {
  absl::StatusOr<BackupPlan> plan = PlanBackup(config_, "zz", false, "api");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(plan.status().message()),
              HasSubstr("cbtctl volumes"));
}

TEST_F(BackupRunTest, ChangeListsGoOnlyToMembersTrackedByLists) {
  for (VolumeConfig& v : config_.volumes) {
    if (v.name == "b") v.method = TrackingMethod::kExternal;
  }
  absl::StatusOr<BackupPlan> plan = PlanBackup(config_, "g", false, "api");
  ASSERT_TRUE(plan.ok());
  const std::string list = R"({"generation":"g1","extents":[]})";
  ASSERT_TRUE(AttachChangeLists(*plan, {{"b", list}}).ok());
  EXPECT_EQ(plan->request.volumes[1].handed_changes, list);
  EXPECT_EQ(plan->request.volumes[0].handed_changes, "");

  absl::Status s = AttachChangeLists(*plan, {{"a", list}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("'a', which is not tracked by external lists"));
  s = AttachChangeLists(*plan, {{"zz", list}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a member"));
}

TEST_F(BackupRunTest, ConsistencyPointOnlyKeepsSnapshotsAndState) {
  absl::StatusOr<BackupPlan> plan = PlanBackup(config_, "g", false, "api");
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<std::vector<SnapshotRef>> refs =
      orchestrator_->TakeConsistencyPointOnly(plan->request);
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_TRUE(snapshots_.Existing().contains((*refs)[0].snapshot_name));
  EXPECT_TRUE(snapshots_.Existing().contains((*refs)[1].snapshot_name));
  EXPECT_FALSE(Tracking("a").has_value());
}

}  // namespace
}  // namespace cbtd::agent
