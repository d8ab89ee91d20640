// When a volume or group is backed up on its own: an interval
// ("every 6h") or a simple calendar spec ("daily 02:30", "hourly :15").
//
// Calendar specs are wall-clock times in a time zone the caller passes
// (cbtd uses the host's local zone); across a DST gap absl's civil-time
// rules pick the instant, so a run is shifted, never skipped.
//
// Thread-safety: a Schedule is an immutable value.
#ifndef CBTD_AGENT_SCHEDULE_H_
#define CBTD_AGENT_SCHEDULE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cbtd::agent {

class Schedule {
 public:
  enum class Kind { kInterval, kDaily, kHourly };

  // "every <duration>" (units s, m, h, d; at least 1m),
  // "daily HH:MM", "hourly :MM". INVALID_ARGUMENT names the accepted forms.
  static absl::StatusOr<Schedule> Parse(std::string_view spec);

  // The first scheduled instant strictly after `after`. For an interval,
  // `after` is the start of the previous run (or the daemon's start), so the
  // result is after + interval.
  absl::Time NextRun(absl::Time after, absl::TimeZone tz) const;

  Kind kind() const { return kind_; }
  // The text it was parsed from, for logs and cbtctl.
  const std::string& spec() const { return spec_; }

 private:
  Schedule() = default;

  Kind kind_ = Kind::kInterval;
  absl::Duration interval_;
  int hour_ = 0;
  int minute_ = 0;
  std::string spec_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_SCHEDULE_H_
