#include "agent/schedule.h"

#include <gtest/gtest.h>

#include "absl/time/civil_time.h"

namespace cbtd::agent {
namespace {

absl::Time Utc(int y, int mo, int d, int h, int mi, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s),
                         absl::UTCTimeZone());
}

struct NextRunRow {
  const char* spec;
  absl::Time after;
  absl::Time expected;
};

TEST(ScheduleTest, NextRunTable) {
  const NextRunRow rows[] = {
      {"every 1h", Utc(2026, 1, 1, 10, 17), Utc(2026, 1, 1, 11, 17)},
      {"every 1h30m", Utc(2026, 1, 1, 23, 0), Utc(2026, 1, 2, 0, 30)},
      {"every 1d", Utc(2026, 2, 28, 5, 0), Utc(2026, 3, 1, 5, 0)},
      // Before today's slot: today. At or after it: tomorrow.
      {"daily 02:30", Utc(2026, 1, 1, 1, 0), Utc(2026, 1, 1, 2, 30)},
      {"daily 02:30", Utc(2026, 1, 1, 2, 30), Utc(2026, 1, 2, 2, 30)},
      {"daily 02:30", Utc(2026, 1, 1, 2, 30, 1), Utc(2026, 1, 2, 2, 30)},
      {"daily 00:00", Utc(2026, 12, 31, 23, 59), Utc(2027, 1, 1, 0, 0)},
      {"hourly :15", Utc(2026, 1, 1, 10, 0), Utc(2026, 1, 1, 10, 15)},
      {"hourly :15", Utc(2026, 1, 1, 10, 15), Utc(2026, 1, 1, 11, 15)},
      {"hourly :00", Utc(2026, 1, 1, 23, 59), Utc(2026, 1, 2, 0, 0)},
  };
  for (const NextRunRow& row : rows) {
    absl::StatusOr<Schedule> s = Schedule::Parse(row.spec);
    ASSERT_TRUE(s.ok()) << row.spec << ": " << s.status();
    EXPECT_EQ(s->NextRun(row.after, absl::UTCTimeZone()), row.expected)
        << row.spec << " after " << row.after;
  }
}

TEST(ScheduleTest, DailyIsWallClockInTheGivenZone) {
  // 02:30 at UTC+2 is 00:30 UTC.
  const absl::TimeZone plus2 = absl::FixedTimeZone(2 * 3600);
  absl::StatusOr<Schedule> s = Schedule::Parse("daily 02:30");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->NextRun(Utc(2026, 1, 1, 0, 0), plus2), Utc(2026, 1, 1, 0, 30));
  EXPECT_EQ(s->NextRun(Utc(2026, 1, 1, 1, 0), plus2), Utc(2026, 1, 2, 0, 30));
}

TEST(ScheduleTest, DailyInADstGapStillRuns) {
  absl::TimeZone berlin;
  if (!absl::LoadTimeZone("Europe/Berlin", &berlin)) {
    GTEST_SKIP() << "no tzdata for Europe/Berlin";
  }
  // 2026-03-29 02:30 does not exist in Berlin; the run must still happen
  // that day rather than be skipped to the 30th.
  absl::StatusOr<Schedule> s = Schedule::Parse("daily 02:30");
  ASSERT_TRUE(s.ok());
  const absl::Time next = s->NextRun(Utc(2026, 3, 28, 23, 0), berlin);
  EXPECT_EQ(absl::ToCivilDay(next, berlin), absl::CivilDay(2026, 3, 29));
}

TEST(ScheduleTest, RejectsBadSpecs) {
  for (const char* spec :
       {"", "every", "every 30s", "every 1x", "daily 2:30", "daily 24:00",
        "daily 02:60", "hourly 15", "hourly :60", "weekly mon", "every 1h x"}) {
    absl::StatusOr<Schedule> s = Schedule::Parse(spec);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << spec;
  }
}

}  // namespace
}  // namespace cbtd::agent
