// The Agent with a real StateStore and JobRunner over fake ports: start-up
// reconciliation, the scheduler and reload.
#include "agent/agent.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <thread>

#include "absl/time/civil_time.h"
#include "tests/agent/fake_ports.h"
#include "tests/common/temp_dir.h"

namespace cbtd::agent {
namespace {

constexpr char kConfig[] = R"(
[volume.a]
path = /dev/vg/a
schedule = every 1h
[volume.b]
path = /dev/vg/b
schedule = daily 02:00
[volume.c]
path = /dev/vg/c
)";

absl::Time Utc(int h, int m) {
  return absl::FromCivil(absl::CivilMinute(2026, 5, 1, h, m),
                         absl::UTCTimeZone());
}

// A vault whose Restore reports progress until the caller cancels it (or,
// with `finish`, completes at once), recording the requests it got.
class FakeVault : public VaultBrowser {
 public:
  absl::StatusOr<std::vector<VersionView>> ListVersions(
      const std::string&) override {
    return std::vector<VersionView>{};
  }
  absl::StatusOr<RestoreOutcome> Restore(const RestoreRequest& r) override {
    requests.push_back(r);
    for (uint64_t done = 1;; ++done) {
      if (!r.progress(done, 1000)) {
        return absl::CancelledError("the restore was cancelled");
      }
      if (finish) return RestoreOutcome{3, 0, 7, 3 << 16, 0};
      usleep(1000);
    }
  }
  absl::StatusOr<VerifyOutcome> Verify(const std::string&,
                                       const std::string&) override {
    return VerifyOutcome{};
  }
  std::atomic<bool> finish{false};
  std::vector<RestoreRequest> requests;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = StateStore::Open(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void TearDown() override { agent_.reset(); }

  void MakeAgent(const char* text = kConfig) {
    auto config = ParseConfig("cbtd.conf", text);
    ASSERT_TRUE(config.ok()) << config.status();
    agent_ = std::make_unique<Agent>(
        *config, *store_,
        BackupPorts{&snapshots_, &tracker_, &sender_, &retention_, &vault_},
        [this] { return now_; }, absl::UTCTimeZone(),
        SchedulerHooks{
            .warn = [this](const std::string& m) { warnings_.push_back(m); },
            .random_delay =
                [this](absl::Duration max) {
                  delay_maxima_.push_back(max);
                  return next_delay_;
                }});
  }

  // Waits until no run of `volume` is queued or in progress.
  void WaitIdle(const std::string& volume) {
    for (int i = 0; i < 5000; ++i) {
      bool busy = false;
      for (const VolumeStatus& v : agent_->ListVolumes()) {
        if (v.config.name == volume) busy = v.busy;
      }
      if (!busy) return;
      usleep(1000);
    }
    FAIL() << volume << " is still busy";
  }

  // Runs that the scheduler started, by volume, oldest first.
  std::vector<std::string> ScheduledVolumes() {
    std::vector<std::string> out;
    auto runs = store_->ListRuns("", 100);
    for (auto it = runs->rbegin(); it != runs->rend(); ++it) {
      if (it->trigger == "schedule") out.push_back(it->volume);
    }
    return out;
  }

  const test::TempDir tmp_{"cbtd-agent-", "/tmp"};
  const std::string dir_ = tmp_.path();
  absl::Time now_ = Utc(0, 30);
  std::unique_ptr<StateStore> store_;
  testing::FakeSnapshots snapshots_;
  testing::FakeTracker tracker_;
  testing::FakeSender sender_;
  testing::FakeRetention retention_;
  FakeVault vault_;
  // What the scheduler logged and drew (Tick runs on the test's thread).
  std::vector<std::string> warnings_;
  std::vector<absl::Duration> delay_maxima_;
  absl::Duration next_delay_ = absl::ZeroDuration();
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, StartRecoversInterruptedRunsAndRemovesOnlyOrphans) {
  // A committed base for a, plus a snapshot and a 'running' row that a
  // killed cbtd left behind.
  RunRecord r;
  r.volume = "a";
  r.trigger = "api";
  const int64_t done = *store_->StartRun(r);
  TrackingRecord base;
  base.volume = "a";
  base.method = "thin-delta";
  base.base_snapshot = "a_cbtd_base";
  base.base_version = "v1";
  ASSERT_TRUE(store_->CommitRun(done, RunOutcome{}, base).ok());
  RunOutcome ok;
  ok.step = kStepDone;
  ASSERT_TRUE(store_->FinishRun(done, ok, now_).ok());
  const int64_t dead = *store_->StartRun(r);
  ASSERT_TRUE(store_->SetRunStep(dead, kStepSend).ok());
  snapshots_.existing = {"a_cbtd_base", "a_cbtd_orphan"};

  MakeAgent();
  absl::StatusOr<std::vector<RunRecord>> interrupted = agent_->Start();
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  ASSERT_EQ(interrupted->size(), 1u);
  EXPECT_EQ((*interrupted)[0].id, dead);
  EXPECT_EQ(store_->GetRun(dead)->result, RunResult::kInterrupted);
  EXPECT_EQ(snapshots_.Existing(), std::set<std::string>{"a_cbtd_base"});
  EXPECT_EQ((*store_->GetTracking("a"))->base_version, "v1");
}

TEST_F(AgentTest, FailedOrphanCleanupIsAWarningNotAFailedStart) {
  snapshots_.orphans_error =
      absl::UnavailableError("device-mapper: list devices failed");
  MakeAgent();
  ASSERT_TRUE(agent_->Start().ok());
  ASSERT_EQ(agent_->start_warnings().size(), 1u);
  EXPECT_THAT(agent_->start_warnings()[0],
              ::testing::HasSubstr("orphaned snapshots were not removed"));
  EXPECT_THAT(agent_->start_warnings()[0],
              ::testing::HasSubstr("device-mapper: list devices failed"));
}

TEST_F(AgentTest, TickStartsOnlyDueSchedules) {
  MakeAgent();
  ASSERT_TRUE(agent_->Start().ok());  // anchors: 00:30, no history
  agent_->Tick(Utc(1, 0));            // a due at 01:30, b at 02:00
  EXPECT_TRUE(ScheduledVolumes().empty());
  agent_->Tick(Utc(1, 31));
  agent_->Shutdown(/*cancel=*/false);  // let the job finish
  EXPECT_EQ(ScheduledVolumes(), std::vector<std::string>{"a"});
}

TEST_F(AgentTest, DailyScheduleFiresOnceAndBusyVolumesSkipTheirSlot) {
  MakeAgent();
  ASSERT_TRUE(agent_->Start().ok());
  std::atomic<bool> release{false};
  sender_.during_send = [&](RunControl&) {
    while (!release) usleep(1000);
  };
  agent_->Tick(Utc(2, 0));  // b is due, and a (01:30)
  agent_->Tick(Utc(2, 1));  // b is busy and not due again
  release = true;
  agent_->Shutdown(/*cancel=*/false);
  std::vector<std::string> v = ScheduledVolumes();
  EXPECT_EQ(std::count(v.begin(), v.end(), "b"), 1);
  EXPECT_EQ(std::count(v.begin(), v.end(), "c"), 0);  // no schedule
}

TEST_F(AgentTest, TickWaitsOutTheRandomizedDelayDrawnOncePerSlot) {
  MakeAgent(
      "[volume.a]\npath = /dev/vg/a\nschedule = hourly\n"
      "randomized_delay = 10m\n");
  ASSERT_TRUE(agent_->Start().ok());  // anchor 00:30: the slot is 01:00
  next_delay_ = absl::Minutes(7);
  agent_->Tick(Utc(0, 59));  // before the slot: nothing drawn
  EXPECT_TRUE(delay_maxima_.empty());
  agent_->Tick(Utc(1, 0));
  EXPECT_EQ(delay_maxima_, std::vector<absl::Duration>{absl::Minutes(10)});
  EXPECT_EQ(agent_->ListVolumes()[0].next_run, Utc(1, 7));
  next_delay_ = absl::Minutes(1);  // not drawn again for this slot
  agent_->Tick(Utc(1, 6));
  EXPECT_TRUE(ScheduledVolumes().empty());
  agent_->Tick(Utc(1, 7));
  EXPECT_EQ(ScheduledVolumes(), std::vector<std::string>{"a"});
  EXPECT_EQ(delay_maxima_.size(), 1u);
  WaitIdle("a");
  // The next slot (02:00) gets its own draw: 1m.
  agent_->Tick(Utc(2, 0));
  EXPECT_EQ(delay_maxima_.size(), 2u);
  EXPECT_EQ(ScheduledVolumes().size(), 1u);
  agent_->Tick(Utc(2, 1));
  agent_->Shutdown(/*cancel=*/false);
  EXPECT_EQ(ScheduledVolumes(), (std::vector<std::string>{"a", "a"}));
  EXPECT_THAT(warnings_, ::testing::IsEmpty());
}

TEST_F(AgentTest, NoRandomizedDelayStartsAtTheSlotWithoutADraw) {
  MakeAgent("[volume.a]\npath = /dev/vg/a\nschedule = hourly\n");
  ASSERT_TRUE(agent_->Start().ok());
  next_delay_ = absl::Minutes(7);  // would delay it, if it were asked
  agent_->Tick(Utc(1, 0));
  agent_->Shutdown(/*cancel=*/false);
  EXPECT_EQ(ScheduledVolumes(), std::vector<std::string>{"a"});
  EXPECT_TRUE(delay_maxima_.empty());
}

TEST_F(AgentTest, ABusyTargetSkipsItsSlotWithAWarning) {
  MakeAgent("[volume.a]\npath = /dev/vg/a\nschedule = hourly\n");
  ASSERT_TRUE(agent_->Start().ok());
  std::atomic<bool> release{false};
  sender_.during_send = [&](RunControl&) {
    while (!release) usleep(1000);
  };
  ASSERT_TRUE(agent_->BackupNow("a", false, "api").ok());
  agent_->Tick(Utc(1, 0));
  release = true;
  agent_->Shutdown(/*cancel=*/false);
  EXPECT_TRUE(ScheduledVolumes().empty());
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_THAT(warnings_[0],
              ::testing::HasSubstr("schedule of a: skipped the slot at "
                                   "2026-05-01 01:00:00 UTC"));
  EXPECT_THAT(warnings_[0],
              ::testing::HasSubstr("already has a run queued or in progress"));
}

TEST_F(AgentTest, MissedSlotsRunOnceAndAreCounted) {
  MakeAgent("[volume.a]\npath = /dev/vg/a\nschedule = hourly\n");
  ASSERT_TRUE(agent_->Start().ok());  // anchor 00:30
  agent_->Tick(Utc(5, 10));           // 01:00 .. 05:00 have passed
  agent_->Tick(Utc(5, 20));
  agent_->Shutdown(/*cancel=*/false);
  EXPECT_EQ(ScheduledVolumes(), std::vector<std::string>{"a"});
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_THAT(warnings_[0],
              ::testing::HasSubstr(
                  "schedule of a: 4 slot(s) from 2026-05-01 01:00:00 UTC to "
                  "2026-05-01 04:00:00 UTC were missed"));
  EXPECT_THAT(warnings_[0],
              ::testing::HasSubstr("once now for the slot at 2026-05-01 "
                                   "05:00:00 UTC"));
  // The anchor is the 05:00 slot, so the next is 06:00.
  EXPECT_EQ(agent_->ListVolumes()[0].next_run, Utc(6, 0));
}

TEST_F(AgentTest, AnIntervalKeepsItsPhaseAfterALateTick) {
  MakeAgent("[volume.a]\npath = /dev/vg/a\nschedule = every 1h\n");
  ASSERT_TRUE(agent_->Start().ok());  // anchor 00:30
  agent_->Tick(Utc(1, 40));           // the 01:30 slot, ten minutes late
  agent_->Shutdown(/*cancel=*/false);
  EXPECT_EQ(ScheduledVolumes(), std::vector<std::string>{"a"});
  EXPECT_EQ(agent_->ListVolumes()[0].next_run, Utc(2, 30));
  EXPECT_THAT(warnings_, ::testing::IsEmpty());
}

TEST_F(AgentTest, ReloadAddsVolumesAndRefusesUnknownOnes) {
  MakeAgent("[volume.a]\npath = /dev/vg/a\n");
  ASSERT_TRUE(agent_->Start().ok());
  EXPECT_EQ(agent_->BackupNow("z", false, "api").status().code(),
            absl::StatusCode::kNotFound);
  auto config = ParseConfig(
      "cbtd.conf", "[volume.a]\npath = /dev/vg/a\n[volume.z]\npath = /z\n");
  ASSERT_TRUE(config.ok());
  agent_->Reload(*config);
  EXPECT_TRUE(agent_->BackupNow("z", false, "api").ok());
  EXPECT_EQ(agent_->ListVolumes().size(), 2u);
  agent_->Shutdown(/*cancel=*/false);
  EXPECT_EQ(store_->ListRuns("z", 10)->at(0).result, RunResult::kSucceeded);
}

TEST_F(AgentTest, StatusLineSaysWhatIsRunning) {
  MakeAgent();
  ASSERT_TRUE(agent_->Start().ok());
  EXPECT_EQ(agent_->StatusLine(), "idle; 3 volume(s)");
  std::atomic<bool> in_send{false};
  std::atomic<bool> release{false};
  sender_.during_send = [&](RunControl&) {
    in_send = true;
    while (!release) usleep(1000);
  };
  ASSERT_TRUE(agent_->BackupNow("c", false, "api").ok());
  while (!in_send) usleep(1000);
  EXPECT_EQ(agent_->StatusLine(), "backing up: c send");
  release = true;
  agent_->Shutdown(/*cancel=*/false);
}

}  // namespace
}  // namespace cbtd::agent

namespace cbtd::agent {
namespace {

// A restore is a run of its own: listed with its progress while it goes,
// cancelled through the run id like a backup, its outcome recorded.
TEST_F(AgentTest, RestoreIsARunWithProgressThatCanBeCancelled) {
  MakeAgent();
  RestoreRequest r;
  r.volume = "a";
  r.version = "v1";
  r.target_path = dir_ + "/restored.img";
  absl::StatusOr<RestoreOutcome> outcome;
  std::thread restore([&] { outcome = agent_->Restore(r); });
  std::optional<RunView> seen;
  for (int i = 0; i < 5000 && !seen; ++i) {
    auto runs = agent_->ListRuns("a", 10, /*active_only=*/true);
    if (runs.ok() && !runs->empty() && (*runs)[0].progress &&
        (*runs)[0].progress->done_bytes > 0) {
      seen = (*runs)[0];
    }
    usleep(1000);
  }
  ASSERT_TRUE(seen.has_value()) << "no restore run with progress was listed";
  EXPECT_EQ(seen->record.trigger, "restore");
  EXPECT_EQ(seen->progress->step, "restore");
  EXPECT_EQ(seen->progress->total_bytes, 1000u);
  // The volume is busy: no backup of it starts under the restore.
  EXPECT_EQ(agent_->BackupNow("a", false, "api").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(agent_->Cancel(seen->record.id).ok());
  restore.join();
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kCancelled);
  absl::StatusOr<RunRecord> row = store_->GetRun(seen->record.id);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->result, RunResult::kCancelled);
  EXPECT_EQ(row->version_id, "v1");
  EXPECT_TRUE(row->ended_at.has_value());
  // Restores are not backups: the volume's backup statistics ignore them,
  // and a cancelled restore is neither a success nor a failure.
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_FALSE((*stats)[0].last_success.has_value());
  EXPECT_EQ((*stats)[0].failures, 0);
  EXPECT_EQ((*stats)[0].restores.succeeded, 0);
  EXPECT_EQ((*stats)[0].restores.failures, 0);
  EXPECT_FALSE((*stats)[0].restores.last_success.has_value());
}

// --in-place writes to the volume's own device and restarts its chain:
// the tracking state says it was rolled back, so the next run compares.
TEST_F(AgentTest, RollbackWritesTheVolumeAndRestartsItsChain) {
  MakeAgent();
  TrackingRecord base;
  base.volume = "a";
  base.method = "thin-delta";
  base.state_blob = R"({"uuid":"u","tracks":"thin-delta"})";
  base.base_snapshot = "vg/a.cbtd-1";
  base.base_version = "v2";
  RunRecord seed;
  seed.volume = "a";
  seed.trigger = "api";
  const int64_t seed_run = *store_->StartRun(seed);
  ASSERT_TRUE(store_->CommitRun(seed_run, RunOutcome{}, base).ok());
  ASSERT_TRUE(store_->FinishRun(seed_run, RunOutcome{}, now_).ok());

  vault_.finish = true;
  RestoreRequest r;
  r.volume = "a";
  r.version = "v1";
  r.in_place = true;
  absl::StatusOr<RestoreOutcome> outcome = agent_->Restore(r);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_EQ(vault_.requests.size(), 1u);
  EXPECT_EQ(vault_.requests[0].target_path, "/dev/vg/a");
  EXPECT_TRUE(vault_.requests[0].in_place);
  auto tracking = store_->GetTracking("a");
  ASSERT_TRUE(tracking.ok() && tracking->has_value());
  EXPECT_THAT((*tracking)->state_blob,
              ::testing::HasSubstr(R"("rolled_back_to":"v1")"));
  EXPECT_EQ((*tracking)->base_version, "v2") << "the compare's base stays";
  auto runs = store_->ListRuns("a", 1);
  ASSERT_TRUE(runs.ok() && !runs->empty());
  EXPECT_EQ((*runs)[0].trigger, "rollback");
  EXPECT_EQ((*runs)[0].result, RunResult::kSucceeded);

  // A rollback takes no base version and no other target.
  r.from_version = "v0";
  EXPECT_EQ(agent_->Restore(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r.from_version.clear();
  r.target_path = dir_ + "/elsewhere";
  EXPECT_EQ(agent_->Restore(r).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cbtd::agent
