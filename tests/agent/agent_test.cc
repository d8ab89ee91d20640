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
        BackupPorts{&snapshots_, &tracker_, &sender_, &retention_},
        [this] { return now_; }, absl::UTCTimeZone());
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
