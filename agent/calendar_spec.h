// A systemd calendar expression (systemd.time(7), as in OnCalendar=): the
// set of wall-clock seconds a schedule fires at.
//
//   [WEEKDAYS] [[YYYY-]MM-DD] [HH:MM[:SS]] [UTC]
//
//   WEEKDAYS  Mon..Sun or Monday..Sunday, any case; lists "Sat,Sun", ranges
//             "Mon..Fri" (or the older "Mon-Fri"). Absent: every day.
//   date      each of year (1970..2199), month (1..12) and day (1..31) is
//             "*", or a comma list of N, N..M, N/STEP or N..M/STEP
//             ("*-*-01", "*-01,07-01", "2027-*-*"). Absent: "*-*-*".
//   time      hour, minute and second the same way ("*:0/15",
//             "00/6:00:00"); seconds default to 00. Absent: 00:00:00.
//   UTC       the wall clock is UTC; otherwise the zone NextRun is given.
//
// and the shorthands minutely, hourly, daily, weekly, monthly, yearly (or
// annually), quarterly, semiannually as systemd defines them (weekly is
// "Mon *-*-* 00:00:00", quarterly "*-01,04,07,10-01 00:00:00"), optionally
// followed by UTC.
//
// Not accepted (INVALID_ARGUMENT names the part): "~" (days from the end of
// the month), fractional seconds, two-digit years, time zones other than
// UTC, "*/STEP" (write 0/STEP), more than one second per minute ("*:*:*":
// backups start at most once a minute, as with "every 1m"), and
// expressions no calendar day can match ("*-02-30", "Mon 2026-06-02").
//
// Thread-safety: a CalendarSpec is an immutable value.
#ifndef CBTD_AGENT_CALENDAR_SPEC_H_
#define CBTD_AGENT_CALENDAR_SPEC_H_

#include <bitset>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace cbtd::agent {

class CalendarSpec {
 public:
  static constexpr int kMinYear = 1970;
  static constexpr int kMaxYear = 2199;

  // INVALID_ARGUMENT says which part is wrong and what would be accepted;
  // the message does not repeat `text`.
  static absl::StatusOr<CalendarSpec> Parse(std::string_view text);

  // The first instant strictly after `after` whose wall-clock time in `tz`
  // (UTC when the expression ends in UTC) matches. A matching time that a
  // DST gap skips maps to the end of the gap (02:30 on Berlin's
  // spring-forward day runs at 03:00 CEST, once even if 03:00 matches too);
  // a time repeated by a fall-back runs at its first occurrence only.
  // InfiniteFuture when nothing matches before the end of kMaxYear.
  absl::Time NextRun(absl::Time after, absl::TimeZone tz) const;

  // The first matching civil second at or after `from`, ignoring time
  // zones; nullopt when there is none up to the end of kMaxYear.
  std::optional<absl::CivilSecond> NextMatch(absl::CivilSecond from) const;

 private:
  struct Time {
    int hour, minute, second;
  };
  CalendarSpec() = default;
  bool DayMatches(absl::CivilDay day) const;
  // The first matching time of day at or after `from`.
  std::optional<Time> NextTime(Time from) const;

  std::bitset<kMaxYear - kMinYear + 1> years_;
  uint8_t weekdays_ = 0;  // bit 0 = Monday
  uint16_t months_ = 0;   // bit m, 1..12
  uint32_t days_ = 0;     // bit d, 1..31
  uint32_t hours_ = 0;    // bit h, 0..23
  uint64_t minutes_ = 0;  // bit m, 0..59
  uint64_t seconds_ = 0;  // bit s, 0..59
  bool utc_ = false;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_CALENDAR_SPEC_H_
