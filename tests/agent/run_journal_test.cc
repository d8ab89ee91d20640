#include "agent/run_journal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cbtd::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;

RunRecord Queued() {
  RunRecord r;
  r.id = 12;
  r.volume = "data";
  r.group = "db";
  r.trigger = "schedule";
  r.started_at = absl::FromUnixSeconds(1795300805);
  return r;
}

TEST(RunJournalTest, QueuedRunNamesVolumeGroupAndTrigger) {
  const JournalEntry e = RunJournalEntry(Queued());
  EXPECT_EQ(e.priority, 6);
  EXPECT_THAT(e.fields,
              ElementsAre("MESSAGE=run 12 of data (group db) queued (schedule)",
                          "MESSAGE_ID=2fa3e2c4edad4f29b7f54381cc62e013",
                          "PRIORITY=6", "CBTD_RUN_ID=12", "CBTD_VOLUME=data",
                          "CBTD_GROUP=db", "CBTD_TRIGGER=schedule"));
}

TEST(RunJournalTest, SucceededRunCarriesItsFiguresAndFallback) {
  RunRecord r = Queued();
  r.result = RunResult::kSucceeded;
  r.step = "done";
  r.method = "hash";
  r.fallback_reason = "thin-delta tracking lost: pool rebuilt";
  r.bytes_read = 48 << 20;
  r.bytes_sent = 3 << 19;
  r.volume_bytes = 48 << 20;
  r.version_id = "20261121T224005Z";
  r.ended_at = r.started_at + absl::Seconds(90);
  const JournalEntry e = RunJournalEntry(r);
  EXPECT_EQ(e.priority, 4);  // a fallback is worth a look
  EXPECT_EQ(e.fields[0],
            "MESSAGE=run 12 of data succeeded: hash, read 48.0 MiB, sent 1.5 "
            "MiB, version 20261121T224005Z (fell back to hash: thin-delta "
            "tracking lost: pool rebuilt)");
  EXPECT_THAT(e.fields,
              Contains("MESSAGE_ID=4abba5e389a14ff0b9e5820ffd15dd73"));
  EXPECT_THAT(e.fields, Contains("CBTD_RESULT=succeeded"));
  EXPECT_THAT(e.fields, Contains("CBTD_BYTES_SENT=1572864"));
  EXPECT_THAT(e.fields, Contains("CBTD_FALLBACK_REASON=thin-delta tracking "
                                 "lost: pool rebuilt"));
  EXPECT_THAT(e.fields, Contains("CBTD_DURATION_SEC=90"));
  EXPECT_THAT(e.fields, Not(Contains("CBTD_ERROR=")));
}

TEST(RunJournalTest, RollbackSaysWhatItWrote) {
  RunRecord r = Queued();
  r.group.clear();
  r.trigger = kTriggerRollback;
  r.result = RunResult::kSucceeded;
  r.step = kStepRestore;
  r.bytes_sent = 2 << 20;
  r.version_id = "20261121T224005Z";
  r.ended_at = r.started_at + absl::Seconds(3);
  const JournalEntry e = RunJournalEntry(r);
  EXPECT_EQ(e.priority, 6);
  EXPECT_EQ(e.fields[0],
            "MESSAGE=run 12 of data succeeded: rolled back in place to "
            "20261121T224005Z, wrote 2.0 MiB");
}

TEST(RunJournalTest, FailedRunIsAnErrorNamingStepAndCause) {
  RunRecord r = Queued();
  r.result = RunResult::kFailed;
  r.step = "consistency-point";
  r.error = "pre-hook 'x': exited 7";
  r.ended_at = r.started_at + absl::Seconds(2);
  const JournalEntry e = RunJournalEntry(r);
  EXPECT_EQ(e.priority, 3);
  EXPECT_EQ(e.fields[0],
            "MESSAGE=run 12 of data failed at step consistency-point: "
            "pre-hook 'x': exited 7");
  EXPECT_THAT(e.fields, Contains("PRIORITY=3"));
  EXPECT_THAT(e.fields, Contains("CBTD_STEP=consistency-point"));
  EXPECT_THAT(e.fields, Contains("CBTD_ERROR=pre-hook 'x': exited 7"));
}

}  // namespace
}  // namespace cbtd::agent
