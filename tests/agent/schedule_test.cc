#include "agent/schedule.h"

#include <gmock/gmock.h>
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

void ExpectNextRuns(const std::vector<NextRunRow>& rows, absl::TimeZone tz) {
  for (const NextRunRow& row : rows) {
    absl::StatusOr<Schedule> s = Schedule::Parse(row.spec);
    ASSERT_TRUE(s.ok()) << row.spec << ": " << s.status();
    EXPECT_EQ(s->NextRun(row.after, tz), row.expected)
        << row.spec << " after " << absl::FormatTime(row.after, tz);
  }
}

TEST(ScheduleTest, NextRunTable) {
  ExpectNextRuns(
      {
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
      },
      absl::UTCTimeZone());
}

// systemd calendar expressions, in UTC. 2026-01-01 is a Thursday. Every
// expected value agrees with `systemd-analyze calendar --base-time=AFTER`
// (systemd 252).
TEST(ScheduleTest, CalendarNextRunTable) {
  ExpectNextRuns(
      {
          // The shorthands.
          {"minutely", Utc(2026, 1, 1, 10, 17, 30), Utc(2026, 1, 1, 10, 18)},
          {"hourly", Utc(2026, 1, 1, 10, 17), Utc(2026, 1, 1, 11, 0)},
          {"daily", Utc(2026, 1, 1, 10, 17), Utc(2026, 1, 2, 0, 0)},
          {"weekly", Utc(2026, 1, 1, 10, 17), Utc(2026, 1, 5, 0, 0)},
          {"monthly", Utc(2026, 1, 31, 10, 0), Utc(2026, 2, 1, 0, 0)},
          {"yearly", Utc(2026, 6, 1, 0, 0), Utc(2027, 1, 1, 0, 0)},
          {"annually", Utc(2026, 6, 1, 0, 0), Utc(2027, 1, 1, 0, 0)},
          {"quarterly", Utc(2026, 1, 1, 0, 0), Utc(2026, 4, 1, 0, 0)},
          {"semiannually", Utc(2026, 3, 15, 0, 0), Utc(2026, 7, 1, 0, 0)},
          // Weekdays: ranges, lists, full names, systemd's older '-'.
          {"Mon..Fri 02:00", Utc(2026, 1, 2, 3, 0), Utc(2026, 1, 5, 2, 0)},
          {"Mon..Fri 02:00", Utc(2026, 1, 1, 1, 0), Utc(2026, 1, 1, 2, 0)},
          {"Sat,Sun 10:00", Utc(2026, 1, 5, 0, 0), Utc(2026, 1, 10, 10, 0)},
          {"monday-Wednesday", Utc(2026, 1, 1, 0, 0), Utc(2026, 1, 5, 0, 0)},
          {"Mon *-02-29", Utc(2026, 1, 1, 0, 0), Utc(2044, 2, 29, 0, 0)},
          // Lists, ranges and repetitions of the date and time.
          {"*-*-* 00/6:00:00", Utc(2026, 1, 1, 6, 0), Utc(2026, 1, 1, 12, 0)},
          {"*-*-* 00/6:00:00", Utc(2026, 1, 1, 18, 0), Utc(2026, 1, 2, 0, 0)},
          {"*:0/15", Utc(2026, 1, 1, 10, 17), Utc(2026, 1, 1, 10, 30)},
          {"*-*-* 08..10:30", Utc(2026, 1, 1, 10, 30), Utc(2026, 1, 2, 8, 30)},
          {"9,17:00", Utc(2026, 1, 1, 9, 0), Utc(2026, 1, 1, 17, 0)},
          {"*-*-01,15 03:00", Utc(2026, 1, 15, 3, 0), Utc(2026, 2, 1, 3, 0)},
          {"*-1..12/3-01", Utc(2026, 4, 1, 0, 0), Utc(2026, 7, 1, 0, 0)},
          {"12-24 18:00", Utc(2026, 12, 25, 0, 0), Utc(2027, 12, 24, 18, 0)},
          // Seconds.
          {"*:*:30", Utc(2026, 1, 1, 10, 17, 30), Utc(2026, 1, 1, 10, 18, 30)},
          {"12:00:05", Utc(2026, 1, 1, 12, 0), Utc(2026, 1, 1, 12, 0, 5)},
          // Month ends: months without the day are passed over.
          {"*-*-31", Utc(2026, 1, 31, 0, 0), Utc(2026, 3, 31, 0, 0)},
          {"*-*-30 12:00", Utc(2026, 1, 30, 12, 0), Utc(2026, 3, 30, 12, 0)},
          {"*-*-28..31 23:00", Utc(2026, 2, 28, 23, 0),
           Utc(2026, 3, 28, 23, 0)},
          // Feb 29 in leap and non-leap years.
          {"*-02-29", Utc(2026, 1, 1, 0, 0), Utc(2028, 2, 29, 0, 0)},
          {"*-02-29", Utc(2028, 2, 29, 0, 0), Utc(2032, 2, 29, 0, 0)},
          {"*-02-29 12:00", Utc(2028, 2, 28, 23, 0), Utc(2028, 2, 29, 12, 0)},
          {"*-03-01", Utc(2028, 2, 28, 0, 0), Utc(2028, 3, 1, 0, 0)},
          // Year rollover, explicit years, the end of the calendar.
          {"*-12-31 23:59:59", Utc(2026, 12, 31, 23, 59, 59),
           Utc(2027, 12, 31, 23, 59, 59)},
          {"daily", Utc(2026, 12, 31, 12, 0), Utc(2027, 1, 1, 0, 0)},
          {"2027..2030-01-01", Utc(2027, 1, 1, 0, 0), Utc(2028, 1, 1, 0, 0)},
          {"2026-01-01", Utc(2026, 1, 1, 0, 0), absl::InfiniteFuture()},
          {"2199-12-31 23:59:59", Utc(2199, 12, 31, 23, 59, 59),
           absl::InfiniteFuture()},
      },
      absl::UTCTimeZone());
}

TEST(ScheduleTest, CalendarIsWallClockInTheGivenZoneUnlessUtc) {
  const absl::TimeZone plus2 = absl::FixedTimeZone(2 * 3600);
  ExpectNextRuns(
      {
          // 02:00 at UTC+2 is 00:00 UTC.
          {"02:00", Utc(2026, 1, 1, 1, 0), Utc(2026, 1, 2, 0, 0)},
          {"02:00 UTC", Utc(2026, 1, 1, 1, 0), Utc(2026, 1, 1, 2, 0)},
          {"daily UTC", Utc(2026, 1, 1, 1, 0), Utc(2026, 1, 2, 0, 0)},
          // Monday 00:30 at UTC+2 is still Sunday in UTC.
          {"Mon 00:30", Utc(2026, 1, 4, 12, 0), Utc(2026, 1, 4, 22, 30)},
          {"Mon 00:30 UTC", Utc(2026, 1, 4, 12, 0), Utc(2026, 1, 5, 0, 30)},
      },
      plus2);
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

// Berlin in 2026: 02:00 CET jumps to 03:00 CEST on 29 March (01:00 UTC);
// 03:00 CEST falls back to 02:00 CET on 25 October (01:00 UTC). Here cbtd
// differs from systemd 252 on purpose: systemd skips "02:30" on the 29th
// and runs "*:0/15" in both 02:xx hours on the 25th.
TEST(ScheduleTest, CalendarAcrossDstInBerlin) {
  absl::TimeZone berlin;
  if (!absl::LoadTimeZone("Europe/Berlin", &berlin)) {
    GTEST_SKIP() << "no tzdata for Europe/Berlin";
  }
  ExpectNextRuns(
      {
          // Spring forward: 02:30 does not exist; it runs at 03:00 CEST.
          {"02:30", Utc(2026, 3, 28, 23, 0), Utc(2026, 3, 29, 1, 0)},
          {"daily 02:30", Utc(2026, 3, 28, 23, 0), Utc(2026, 3, 29, 1, 0)},
          {"02:30", Utc(2026, 3, 29, 1, 0), Utc(2026, 3, 30, 0, 30)},
          // 02:00..02:45 and 03:00 are one run at 03:00 CEST, then 03:15.
          {"*:0/15", Utc(2026, 3, 29, 0, 50), Utc(2026, 3, 29, 1, 0)},
          {"*:0/15", Utc(2026, 3, 29, 1, 0), Utc(2026, 3, 29, 1, 15)},
          // Fall back: 02:30 happens twice and runs at the first only.
          {"02:30", Utc(2026, 10, 24, 23, 0), Utc(2026, 10, 25, 0, 30)},
          {"02:30", Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 26, 1, 30)},
          {"hourly", Utc(2026, 10, 25, 0, 0), Utc(2026, 10, 25, 2, 0)},
          {"hourly :30", Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 25, 2, 30)},
          // From inside the second 02:xx: nothing more until 03:00 CET.
          {"*:0/15", Utc(2026, 10, 25, 1, 10), Utc(2026, 10, 25, 2, 0)},
          // UTC ignores the zone.
          {"02:30 UTC", Utc(2026, 3, 29, 0, 0), Utc(2026, 3, 29, 2, 30)},
          // The weekday is Berlin's: Monday 00:30 CET is Sunday in UTC.
          {"Mon 00:30", Utc(2026, 1, 4, 22, 0), Utc(2026, 1, 4, 23, 30)},
      },
      berlin);
}

TEST(ScheduleTest, ParsesEveryForm) {
  const struct {
    const char* spec;
    Schedule::Kind kind;
  } rows[] = {
      {"every 6h", Schedule::Kind::kInterval},
      {"daily 02:30", Schedule::Kind::kDaily},
      {"hourly :15", Schedule::Kind::kHourly},
      {"daily", Schedule::Kind::kCalendar},
      {"hourly", Schedule::Kind::kCalendar},
      {"Weekly", Schedule::Kind::kCalendar},
      {"daily UTC", Schedule::Kind::kCalendar},
      {"Mon..Fri 02:00", Schedule::Kind::kCalendar},
      {"Sat,Sun *-*-* 10:00:00 UTC", Schedule::Kind::kCalendar},
      {"*-*-* 00/6:00:00", Schedule::Kind::kCalendar},
      {"  Tuesday\t2026..2030-1,7-1 23:59:59 ", Schedule::Kind::kCalendar},
      {"*-02-29", Schedule::Kind::kCalendar},
      {"Mon", Schedule::Kind::kCalendar},
  };
  for (const auto& row : rows) {
    absl::StatusOr<Schedule> s = Schedule::Parse(row.spec);
    ASSERT_TRUE(s.ok()) << row.spec << ": " << s.status();
    EXPECT_EQ(s->kind(), row.kind) << row.spec;
  }
}

TEST(ScheduleTest, RejectsBadSpecsSayingWhy) {
  const struct {
    const char* spec;
    const char* message;
  } rows[] = {
      {"", "the expression is empty"},
      {"every", "'every' takes one duration"},
      {"every 1h x", "'every' takes one duration"},
      {"every 30s", "at least 1m"},
      {"every 1x", "every 1x"},
      {"daily 2:30", "HH:MM, 00:00 to 23:59"},
      {"daily 24:00", "HH:MM, 00:00 to 23:59"},
      {"daily 02:60", "HH:MM, 00:00 to 23:59"},
      {"hourly :60", ":MM, :00 to :59"},
      {"hourly 15", "'hourly' is a shorthand and stands alone"},
      {"weekly mon", "'weekly' is a shorthand and stands alone"},
      {"Funday", "'Funday' is not a weekday"},
      {"Fri..Mon", "'Fri..Mon' runs backwards"},
      {"*-02-30", "no calendar day matches it"},
      {"2026-02-29", "no calendar day matches it"},
      {"Mon 2026-06-02", "no calendar day matches it"},
      {"*-*~01", "'~' (days counted from the end of the month)"},
      {"2300-01-01", "year 2300 is outside 1970..2199"},
      {"26-01-01", "year 26 is outside 1970..2199"},
      {"*-13-01", "month 13 is outside 1..12"},
      {"25:00", "hour 25 is outside 0..23"},
      {"10..08:00", "the hour range '10..08' runs backwards"},
      {"*:*/15", "a repetition starts at a value, e.g. '0/15'"},
      {"0/0:00", "needs a step from 1 to 23"},
      {"12:00:00.5", "fractional seconds"},
      {"*:*:*", "the seconds '*' fire more than once a minute"},
      {"*:0/5:0/30", "the seconds '0/30' fire more than once a minute"},
      {"x:00", "'x' is not a number for the hour"},
      {"1-2-3-4", "must be YYYY-MM-DD or MM-DD"},
      {"1:2:3:4", "must be HH:MM or HH:MM:SS"},
      {"02:00 Europe/Berlin", "time zone 'Europe/Berlin' is not supported"},
      {"02:00 03:00", "unexpected '03:00'"},
  };
  for (const auto& row : rows) {
    absl::StatusOr<Schedule> s = Schedule::Parse(row.spec);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument)
        << row.spec;
    EXPECT_THAT(s.status().message(), ::testing::HasSubstr(row.message))
        << row.spec;
    EXPECT_THAT(s.status().message(),
                ::testing::HasSubstr("Mon..Fri 02:00"))  // the accepted forms
        << row.spec;
  }
}

}  // namespace
}  // namespace cbtd::agent
