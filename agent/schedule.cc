#include "agent/schedule.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "common/units.h"

namespace cbtd::agent {
namespace {

bool ParseTwoDigits(std::string_view text, int max, int& out) {
  if (text.size() != 2) return false;
  long long v = 0;
  if (!common::ParseInt(text, v) || v < 0 || v > max) return false;
  out = static_cast<int>(v);
  return true;
}

}  // namespace

absl::StatusOr<Schedule> Schedule::Parse(std::string_view spec) {
  const std::string original(common::TrimSpace(spec));
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule '", original, "': ", why,
                     "; write 'every 6h', 'daily 02:30' or 'hourly :15'"));
  };
  std::vector<std::string> words =
      absl::StrSplit(original, ' ', absl::SkipEmpty());
  if (words.size() != 2) return bad("expected two words");
  Schedule s;
  s.spec_ = original;
  if (words[0] == "every") {
    absl::StatusOr<absl::Duration> d = common::ParseDurationSpec(words[1]);
    if (!d.ok()) return bad(std::string(d.status().message()));
    if (*d < absl::Minutes(1)) return bad("the interval must be at least 1m");
    s.kind_ = Kind::kInterval;
    s.interval_ = *d;
    return s;
  }
  if (words[0] == "daily") {
    std::vector<std::string> hm = absl::StrSplit(words[1], ':');
    if (hm.size() != 2 || !ParseTwoDigits(hm[0], 23, s.hour_) ||
        !ParseTwoDigits(hm[1], 59, s.minute_)) {
      return bad("the time must be HH:MM, 00:00 to 23:59");
    }
    s.kind_ = Kind::kDaily;
    return s;
  }
  if (words[0] == "hourly") {
    if (!words[1].starts_with(":") ||
        !ParseTwoDigits(std::string_view(words[1]).substr(1), 59, s.minute_)) {
      return bad("the minute must be :MM, :00 to :59");
    }
    s.kind_ = Kind::kHourly;
    return s;
  }
  return bad("unknown kind");
}

absl::Time Schedule::NextRun(absl::Time after, absl::TimeZone tz) const {
  switch (kind_) {
    case Kind::kInterval:
      return after + interval_;
    case Kind::kDaily: {
      const absl::CivilDay day = absl::ToCivilDay(after, tz);
      // Two days cover every case, including a DST shift on the first.
      for (int i = 0; i < 3; ++i) {
        const absl::CivilDay d = day + i;
        const absl::CivilMinute at(d.year(), d.month(), d.day(), hour_,
                                   minute_);
        const absl::Time t = absl::FromCivil(at, tz);
        if (t > after) return t;
      }
      break;
    }
    case Kind::kHourly: {
      const absl::CivilHour hour = absl::ToCivilHour(after, tz);
      for (int i = 0; i < 4; ++i) {
        const absl::CivilMinute at(hour + i);
        const absl::Time t = absl::FromCivil(at + minute_, tz);
        if (t > after) return t;
      }
      break;
    }
  }
  return absl::InfiniteFuture();  // not reached for valid schedules
}

}  // namespace cbtd::agent
