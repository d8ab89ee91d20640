#include "agent/state_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "tests/common/temp_dir.h"

namespace cbtd::agent {
namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_ + "/state.db"; }

  std::unique_ptr<StateStore> OpenOrDie() {
    absl::StatusOr<std::unique_ptr<StateStore>> s = StateStore::Open(path_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  const test::TempDir tmp_{"cbtd-state-", "/tmp"};
  const std::string dir_ = tmp_.path();
  std::string path_;
};

RunRecord NewRun(const std::string& volume) {
  RunRecord r;
  r.volume = volume;
  r.trigger = "api";
  r.started_at = absl::FromUnixSeconds(1000);
  return r;
}

TEST_F(StateStoreTest, CommitAdvancesTrackingAndRecordsTheRun) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->GetTracking("db")->has_value());
  absl::StatusOr<int64_t> id = store->StartRun(NewRun("db"));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(store->SetRunStep(*id, kStepSend).ok());

  RunOutcome o;
  o.method = "thin-delta";
  o.bytes_read = 4096;
  o.bytes_sent = 1000;
  o.version_id = "v1";
  TrackingRecord t{.volume = "db",
                   .method = "thin-delta",
                   .state_blob = std::string("a\0b", 3),
                   .base_snapshot = "db_cbtd_1",
                   .base_version = "v1",
                   .updated_at = absl::FromUnixSeconds(1005)};
  ASSERT_TRUE(store->CommitRun(*id, o, t).ok());
  absl::StatusOr<std::optional<TrackingRecord>> got = store->GetTracking("db");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state_blob, std::string("a\0b", 3));
  EXPECT_EQ((*got)->base_version, "v1");
  EXPECT_EQ((*got)->updated_at, absl::FromUnixSeconds(1005));

  absl::StatusOr<RunRecord> run = store->GetRun(*id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->result, RunResult::kRunning);
  EXPECT_EQ(run->step, kStepRotateBase);
  EXPECT_EQ(run->version_id, "v1");

  o.step = kStepDone;
  ASSERT_TRUE(store->FinishRun(*id, o, absl::FromUnixSeconds(1010)).ok());
  run = store->GetRun(*id);
  EXPECT_EQ(run->result, RunResult::kSucceeded);
  EXPECT_EQ(run->ended_at, absl::FromUnixSeconds(1010));
  EXPECT_EQ(run->bytes_sent, 1000u);
}

TEST_F(StateStoreTest, ARunLeftRunningByACrashIsInterruptedOnReopen) {
  // The child starts a run and dies without closing anything, as a
  // SIGKILLed cbtd would.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = StateStore::Open(path_);
    if (!s.ok()) _exit(2);
    absl::StatusOr<int64_t> id = (*s)->StartRun(NewRun("db"));
    if (!id.ok() || !(*s)->SetRunStep(*id, kStepSend).ok()) _exit(3);
    _exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 0);

  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<RunRecord>> recovered =
      store->RecoverInterruptedRuns(absl::FromUnixSeconds(2000));
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  ASSERT_EQ(recovered->size(), 1u);
  absl::StatusOr<RunRecord> run = store->GetRun((*recovered)[0].id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->result, RunResult::kInterrupted);
  EXPECT_EQ(run->step, kStepSend);  // where it died
  EXPECT_NE(run->error.find("during step send"), std::string::npos)
      << run->error;
  EXPECT_EQ(run->ended_at, absl::FromUnixSeconds(2000));
  EXPECT_FALSE(store->GetTracking("db")->has_value());
  // A second recovery finds nothing.
  EXPECT_TRUE(
      store->RecoverInterruptedRuns(absl::FromUnixSeconds(3000))->empty());
}

TEST_F(StateStoreTest, FailedRunLeavesTrackingUntouched) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const int64_t first = *store->StartRun(NewRun("db"));
  TrackingRecord t{.volume = "db",
                   .method = "hash",
                   .state_blob = "",
                   .base_snapshot = "s1",
                   .base_version = "v1",
                   .updated_at = absl::FromUnixSeconds(1)};
  ASSERT_TRUE(store->CommitRun(first, RunOutcome{}, t).ok());
  const int64_t second = *store->StartRun(NewRun("db"));
  RunOutcome failed;
  failed.result = RunResult::kFailed;
  failed.step = kStepSend;
  failed.error = "receiver unavailable";
  ASSERT_TRUE(store->FinishRun(second, failed, absl::FromUnixSeconds(9)).ok());
  EXPECT_EQ((*store->GetTracking("db"))->base_version, "v1");
  absl::StatusOr<std::vector<RunRecord>> runs = store->ListRuns("db", 10);
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, second);  // newest first
  EXPECT_EQ((*runs)[0].step, kStepSend);
  EXPECT_EQ((*runs)[0].error, "receiver unavailable");
}

TEST_F(StateStoreTest, ObserverSeesEachRunQueuedAndEndedAsStored) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  std::vector<RunRecord> seen;
  store->set_run_observer([&](const RunRecord& r) {
    // Called outside the lock: reading the store again must not deadlock.
    EXPECT_TRUE(store->GetRun(r.id).ok());
    seen.push_back(r);
  });
  const int64_t id = *store->StartRun(NewRun("db"));
  RunOutcome failed;
  failed.result = RunResult::kFailed;
  failed.step = kStepSend;
  failed.error = "receiver unavailable";
  ASSERT_TRUE(store->FinishRun(id, failed, absl::FromUnixSeconds(9)).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].id, id);
  EXPECT_EQ(seen[0].result, RunResult::kRunning);
  EXPECT_EQ(seen[1].result, RunResult::kFailed);
  EXPECT_EQ(seen[1].error, "receiver unavailable");
  EXPECT_EQ(seen[1].ended_at, absl::FromUnixSeconds(9));
}

TEST_F(StateStoreTest, RefusesADatabaseFromANewerCbtd) {
  { ASSERT_NE(OpenOrDie(), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  absl::StatusOr<std::unique_ptr<StateStore>> s = StateStore::Open(path_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(s.status().message()).find("schema version 99"),
            std::string::npos);
}

TEST_F(StateStoreTest, ReopenKeepsDataAndSchema) {
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->StartRun(NewRun("a")).ok());
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ListRuns("", 10)->size(), 1u);
}

TEST_F(StateStoreTest, StatsPerVolume) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  RunRecord r = NewRun("db");
  r.started_at = absl::FromUnixSeconds(100);
  const int64_t a = *store->StartRun(r);
  RunOutcome ok;
  ok.step = kStepDone;
  ok.fallback_reason = "snapshot lost";
  ok.bytes_read = 10;
  ok.bytes_sent = 5;
  ASSERT_TRUE(store->FinishRun(a, ok, absl::FromUnixSeconds(160)).ok());
  r.started_at = absl::FromUnixSeconds(200);
  const int64_t b = *store->StartRun(r);
  RunOutcome failed;
  failed.result = RunResult::kFailed;
  failed.step = kStepSend;
  failed.bytes_read = 7;
  ASSERT_TRUE(store->FinishRun(b, failed, absl::FromUnixSeconds(230)).ok());
  absl::StatusOr<std::vector<VolumeRunStats>> stats = store->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  const VolumeRunStats& s = (*stats)[0];
  EXPECT_EQ(s.last_success, absl::FromUnixSeconds(160));
  EXPECT_EQ(s.last_duration, absl::Seconds(30));
  EXPECT_EQ(s.last_bytes_read, 7u);
  EXPECT_EQ(s.failures, 1);
  EXPECT_EQ(s.fallbacks, 1);
}

TEST_F(StateStoreTest, RestoresAndRollbacksHaveStatsOfTheirOwn) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  RunRecord backup = NewRun("db");
  backup.started_at = absl::FromUnixSeconds(100);
  RunOutcome sent;
  sent.step = kStepDone;
  sent.bytes_read = 10;
  sent.bytes_sent = 5;
  ASSERT_TRUE(store
                  ->FinishRun(*store->StartRun(backup), sent,
                              absl::FromUnixSeconds(110))
                  .ok());
  RunRecord restore = NewRun("db");
  restore.trigger = kTriggerRestore;
  restore.started_at = absl::FromUnixSeconds(200);
  RunOutcome written;
  written.step = kStepRestore;
  written.bytes_sent = 4096;  // a restore's bytes written to its target
  ASSERT_TRUE(store
                  ->FinishRun(*store->StartRun(restore), written,
                              absl::FromUnixSeconds(204))
                  .ok());
  RunRecord rollback = restore;
  rollback.trigger = kTriggerRollback;
  rollback.started_at = absl::FromUnixSeconds(300);
  RunOutcome failed;
  failed.result = RunResult::kFailed;
  failed.step = kStepRestore;
  ASSERT_TRUE(store
                  ->FinishRun(*store->StartRun(rollback), failed,
                              absl::FromUnixSeconds(301))
                  .ok());
  // Only restores of "logs": it is listed with no backup figures.
  RunRecord other = restore;
  other.volume = "logs";
  ASSERT_TRUE(store
                  ->FinishRun(*store->StartRun(other), written,
                              absl::FromUnixSeconds(210))
                  .ok());

  absl::StatusOr<std::vector<VolumeRunStats>> stats = store->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 2u);
  const VolumeRunStats& db = (*stats)[0];
  EXPECT_EQ(db.volume, "db");
  // The backup's figures are not touched by the restores after it.
  EXPECT_EQ(db.last_success, absl::FromUnixSeconds(110));
  EXPECT_EQ(db.last_duration, absl::Seconds(10));
  EXPECT_EQ(db.last_bytes_sent, 5u);
  EXPECT_EQ(db.failures, 0);
  EXPECT_EQ(db.restores.last_success, absl::FromUnixSeconds(204));
  EXPECT_EQ(db.restores.last_duration, absl::Seconds(1));  // the rollback
  EXPECT_EQ(db.restores.last_bytes_written, 0u);
  EXPECT_EQ(db.restores.succeeded, 1);
  EXPECT_EQ(db.restores.failures, 1);
  const VolumeRunStats& logs = (*stats)[1];
  EXPECT_EQ(logs.volume, "logs");
  EXPECT_FALSE(logs.last_success.has_value());
  EXPECT_EQ(logs.restores.last_bytes_written, 4096u);
  EXPECT_EQ(logs.restores.succeeded, 1);
}

}  // namespace
}  // namespace cbtd::agent
