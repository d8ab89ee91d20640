#include "agent/schedule.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/units.h"

namespace cbtd::agent {
namespace {

constexpr char kForms[] =
    "write 'every 6h', 'daily 02:30', 'hourly :15' or a systemd calendar "
    "expression such as 'daily', 'Mon..Fri 02:00' or '*-*-* 00/6:00:00'";

bool TwoDigits(std::string_view text, int max) {
  if (text.size() != 2) return false;
  long long v = 0;
  return common::ParseInt(text, v) && v >= 0 && v <= max;
}

}  // namespace

absl::StatusOr<Schedule> Schedule::Parse(std::string_view spec) {
  const std::string original(common::TrimSpace(spec));
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule '", original, "': ", why, "; ", kForms));
  };
  std::vector<std::string> words =
      absl::StrSplit(original, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  Schedule s;
  s.spec_ = original;
  if (!words.empty() && words[0] == "every") {
    if (words.size() != 2) return bad("'every' takes one duration");
    absl::StatusOr<absl::Duration> d = common::ParseDurationSpec(words[1]);
    if (!d.ok()) return bad(std::string(d.status().message()));
    if (*d < absl::Minutes(1)) return bad("the interval must be at least 1m");
    s.kind_ = Kind::kInterval;
    s.interval_ = *d;
    return s;
  }
  // cbtd's own forms, kept as they were; each is a calendar expression.
  std::string calendar = original;
  if (words.size() == 2 && words[0] == "daily" &&
      words[1].find(':') != std::string::npos) {
    std::vector<std::string> hm = absl::StrSplit(words[1], ':');
    if (hm.size() != 2 || !TwoDigits(hm[0], 23) || !TwoDigits(hm[1], 59)) {
      return bad("the time must be HH:MM, 00:00 to 23:59");
    }
    s.kind_ = Kind::kDaily;
    calendar = absl::StrCat("*-*-* ", words[1], ":00");
  } else if (words.size() == 2 && words[0] == "hourly" &&
             words[1].starts_with(":")) {
    if (!TwoDigits(std::string_view(words[1]).substr(1), 59)) {
      return bad("the minute must be :MM, :00 to :59");
    }
    s.kind_ = Kind::kHourly;
    calendar = absl::StrCat("*-*-* *", words[1], ":00");
  } else {
    s.kind_ = Kind::kCalendar;
  }
  absl::StatusOr<CalendarSpec> c = CalendarSpec::Parse(calendar);
  if (!c.ok()) return bad(std::string(c.status().message()));
  s.calendar_ = *c;
  return s;
}

absl::Time Schedule::NextRun(absl::Time after, absl::TimeZone tz) const {
  if (kind_ == Kind::kInterval) return after + interval_;
  return calendar_->NextRun(after, tz);
}

}  // namespace cbtd::agent
