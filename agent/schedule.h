// When a volume or group is backed up on its own: an interval
// ("every 6h"), cbtd's own simple calendar forms ("daily 02:30",
// "hourly :15"), or a systemd calendar expression as in OnCalendar=
// ("daily", "Mon..Fri 02:00", "*-*-* 00/6:00:00", "weekly UTC"; the
// grammar is in calendar_spec.h).
//
// "daily 02:30" keeps cbtd's meaning (every day at 02:30); systemd would
// not accept it. It is the same as the calendar expression "02:30".
//
// Calendar times are wall-clock times in a time zone the caller passes
// (cbtd uses the host's local zone) unless the expression ends in UTC. A
// time a DST gap skips runs at the gap's end (shifted, never skipped); a
// time a fall-back repeats runs once.
//
// Thread-safety: a Schedule is an immutable value.
#ifndef CBTD_AGENT_SCHEDULE_H_
#define CBTD_AGENT_SCHEDULE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/calendar_spec.h"

namespace cbtd::agent {

class Schedule {
 public:
  enum class Kind { kInterval, kDaily, kHourly, kCalendar };

  // "every <duration>" (units s, m, h, d; at least 1m), "daily HH:MM",
  // "hourly :MM", or a systemd calendar expression. INVALID_ARGUMENT names
  // the part that is wrong and the accepted forms.
  static absl::StatusOr<Schedule> Parse(std::string_view spec);

  // The first scheduled instant strictly after `after`. For an interval,
  // `after` is the start of the previous run (or the daemon's start), so the
  // result is after + interval. InfiniteFuture when a calendar expression
  // has no time left (e.g. a date in the past).
  absl::Time NextRun(absl::Time after, absl::TimeZone tz) const;

  Kind kind() const { return kind_; }
  // The text it was parsed from, for logs and cbtctl.
  const std::string& spec() const { return spec_; }

 private:
  Schedule() = default;

  Kind kind_ = Kind::kInterval;
  absl::Duration interval_;               // kInterval
  std::optional<CalendarSpec> calendar_;  // every other kind
  std::string spec_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_SCHEDULE_H_
