#include "agent/calendar_spec.h"

#include <array>
#include <bit>
#include <cctype>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/units.h"

namespace cbtd::agent {
namespace {

constexpr std::array<std::string_view, 7> kWeekdays = {
    "monday", "tuesday",  "wednesday", "thursday",
    "friday", "saturday", "sunday"};

// What each shorthand stands for, in systemd's own words.
struct Shorthand {
  std::string_view name;
  std::string_view expansion;
};
constexpr Shorthand kShorthands[] = {
    {"minutely", "*-*-* *:*:00"},
    {"hourly", "*-*-* *:00:00"},
    {"daily", "*-*-* 00:00:00"},
    {"weekly", "Mon *-*-* 00:00:00"},
    {"monthly", "*-*-01 00:00:00"},
    {"yearly", "*-01-01 00:00:00"},
    {"annually", "*-01-01 00:00:00"},
    {"quarterly", "*-01,04,07,10-01 00:00:00"},
    {"semiannually", "*-01,07-01 00:00:00"},
};

std::optional<std::string> ExpandShorthand(const std::string& word) {
  for (const Shorthand& s : kShorthands) {
    if (absl::EqualsIgnoreCase(word, std::string(s.name))) {
      return std::string(s.expansion);
    }
  }
  return std::nullopt;
}

// The first set bit at or above `from`, or -1.
int NextBit(uint64_t mask, int from) {
  if (from > 63) return -1;
  const uint64_t m = mask & (~uint64_t{0} << from);
  return m == 0 ? -1 : std::countr_zero(m);
}

bool IsDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// One field of a date or time ("year", "hour", ...) and its values.
struct Field {
  const char* name;
  int min;
  int max;
};

absl::StatusOr<int> FieldValue(const std::string& text, const Field& f) {
  long long v = 0;
  if (!IsDigits(text) || !common::ParseInt(text, v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a number for the ", f.name));
  }
  if (v < f.min || v > f.max) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.name, " ", text, " is outside ", f.min, "..", f.max));
  }
  return static_cast<int>(v);
}

// "*" or a comma list of N, N..M, N/STEP, N..M/STEP: the values it names.
absl::StatusOr<std::vector<int>> ParseChain(const std::string& text,
                                            const Field& f) {
  std::vector<int> out;
  if (text == "*") {
    for (int v = f.min; v <= f.max; ++v) out.push_back(v);
    return out;
  }
  for (const std::string& element :
       std::vector<std::string>(absl::StrSplit(text, ','))) {
    std::string range = element;
    int step = 0;  // 0: no repetition
    if (const size_t slash = element.find('/'); slash != std::string::npos) {
      range = element.substr(0, slash);
      if (range == "*") {
        return absl::InvalidArgumentError(
            absl::StrCat("'", element, "' in the ", f.name,
                         ": a repetition starts at a value, e.g. '", f.min,
                         element.substr(slash), "'"));
      }
      long long s = 0;
      const std::string step_text = element.substr(slash + 1);
      if (!IsDigits(step_text) || !common::ParseInt(step_text, s) || s < 1 ||
          s > f.max) {
        return absl::InvalidArgumentError(
            absl::StrCat("the repetition '", element, "' in the ", f.name,
                         " needs a step from 1 to ", f.max));
      }
      step = static_cast<int>(s);
    }
    std::vector<std::string> ends = absl::StrSplit(range, "..");
    if (ends.size() > 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", element, "' in the ", f.name, " is not a range"));
    }
    absl::StatusOr<int> first = FieldValue(ends[0], f);
    if (!first.ok()) return first.status();
    int last = *first;
    if (ends.size() == 2) {
      absl::StatusOr<int> end = FieldValue(ends[1], f);
      if (!end.ok()) return end.status();
      if (*end < *first) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the ", f.name, " range '", range, "' runs backwards"));
      }
      last = *end;
    } else if (step > 0) {
      last = f.max;
    }
    for (int v = *first; v <= last; v += step > 0 ? step : 1) out.push_back(v);
  }
  return out;
}

absl::StatusOr<uint64_t> ParseMask(const std::string& text, const Field& f) {
  absl::StatusOr<std::vector<int>> values = ParseChain(text, f);
  if (!values.ok()) return values.status();
  uint64_t mask = 0;
  for (int v : *values) mask |= uint64_t{1} << v;
  return mask;
}

std::optional<int> WeekdayIndex(const std::string& name) {
  for (size_t i = 0; i < kWeekdays.size(); ++i) {
    const std::string full(kWeekdays[i]);
    if (absl::EqualsIgnoreCase(name, full) ||
        absl::EqualsIgnoreCase(name, full.substr(0, 3))) {
      return static_cast<int>(i);
    }
  }
  return std::nullopt;
}

absl::StatusOr<int> Weekday(const std::string& name) {
  if (std::optional<int> i = WeekdayIndex(name)) return *i;
  if (ExpandShorthand(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", name, "' is a shorthand and stands alone (optionally with UTC)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", name, "' is not a weekday (Mon..Sun or Monday..Sunday)"));
}

// "Mon", "Sat,Sun", "Mon..Fri", "Mon-Fri" (systemd's older range form).
absl::StatusOr<uint8_t> ParseWeekdays(const std::string& text) {
  uint8_t mask = 0;
  for (const std::string& element :
       std::vector<std::string>(absl::StrSplit(text, ','))) {
    const std::vector<std::string> ends =
        absl::StrContains(element, "..")
            ? std::vector<std::string>(absl::StrSplit(element, ".."))
            : std::vector<std::string>(absl::StrSplit(element, '-'));
    if (ends.size() > 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", element, "' is not a weekday range like Mon..Fri"));
    }
    absl::StatusOr<int> first = Weekday(ends[0]);
    if (!first.ok()) return first.status();
    absl::StatusOr<int> last = ends.size() == 2 ? Weekday(ends[1]) : first;
    if (!last.ok()) return last.status();
    if (*last < *first) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the weekday range '", element,
          "' runs backwards; weeks start on Monday (write e.g. Sat,Sun)"));
    }
    for (int d = *first; d <= *last; ++d) mask |= 1 << d;
  }
  return mask;
}

bool LooksLikeTimeZone(const std::string& word) {
  if (absl::StrContains(word, '/')) return true;
  for (char c : word) {
    if (!std::isalpha(static_cast<unsigned char>(c))) return false;
  }
  return !WeekdayIndex(word).has_value();
}

constexpr Field kYear = {"year", CalendarSpec::kMinYear,
                         CalendarSpec::kMaxYear};
constexpr Field kMonth = {"month", 1, 12};
constexpr Field kDay = {"day", 1, 31};
constexpr Field kHour = {"hour", 0, 23};
constexpr Field kMinute = {"minute", 0, 59};
constexpr Field kSecond = {"second", 0, 59};

}  // namespace

absl::StatusOr<CalendarSpec> CalendarSpec::Parse(std::string_view text) {
  const auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(why);
  };
  if (text.find('~') != std::string_view::npos) {
    return bad(
        "'~' (days counted from the end of the month) is not supported; "
        "name the days, e.g. *-*-28..31");
  }
  std::vector<std::string> words = absl::StrSplit(
      std::string(text), absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (words.empty()) return bad("the expression is empty");
  CalendarSpec spec;
  if (words.size() >= 2 && absl::EqualsIgnoreCase(words.back(), "UTC")) {
    spec.utc_ = true;
    words.pop_back();
  }
  if (words.size() == 1) {
    if (std::optional<std::string> e = ExpandShorthand(words[0])) {
      words = std::vector<std::string>(absl::StrSplit(*e, ' '));
    }
  }

  size_t i = 0;
  spec.weekdays_ = 0x7f;
  if (i < words.size() &&
      std::isalpha(static_cast<unsigned char>(words[i][0])) &&
      !absl::StrContains(words[i], ':')) {
    absl::StatusOr<uint8_t> w = ParseWeekdays(words[i++]);
    if (!w.ok()) return w.status();
    spec.weekdays_ = *w;
  }

  std::string date = "*-*-*";
  if (i < words.size() && absl::StrContains(words[i], '-') &&
      !absl::StrContains(words[i], ':')) {
    date = words[i++];
  }
  std::vector<std::string> ymd = absl::StrSplit(date, '-');
  if (ymd.size() == 2) ymd.insert(ymd.begin(), "*");
  if (ymd.size() != 3) {
    return bad(
        absl::StrCat("the date '", date, "' must be YYYY-MM-DD or MM-DD"));
  }
  absl::StatusOr<std::vector<int>> years = ParseChain(ymd[0], kYear);
  if (!years.ok()) return years.status();
  for (int y : *years) spec.years_.set(y - kMinYear);
  absl::StatusOr<uint64_t> months = ParseMask(ymd[1], kMonth);
  if (!months.ok()) return months.status();
  spec.months_ = static_cast<uint16_t>(*months);
  absl::StatusOr<uint64_t> days = ParseMask(ymd[2], kDay);
  if (!days.ok()) return days.status();
  spec.days_ = static_cast<uint32_t>(*days);

  std::string time = "00:00:00";
  if (i < words.size() && absl::StrContains(words[i], ':')) time = words[i++];
  std::vector<std::string> hms = absl::StrSplit(time, ':');
  if (hms.size() == 2) hms.push_back("00");
  if (hms.size() != 3) {
    return bad(absl::StrCat("the time '", time, "' must be HH:MM or HH:MM:SS"));
  }
  if (absl::StrContains(hms[2], '.')) {
    return bad(
        absl::StrCat("fractional seconds ('", hms[2], "') are not supported"));
  }
  absl::StatusOr<uint64_t> hours = ParseMask(hms[0], kHour);
  if (!hours.ok()) return hours.status();
  spec.hours_ = static_cast<uint32_t>(*hours);
  absl::StatusOr<uint64_t> minutes = ParseMask(hms[1], kMinute);
  if (!minutes.ok()) return minutes.status();
  spec.minutes_ = *minutes;
  absl::StatusOr<uint64_t> seconds = ParseMask(hms[2], kSecond);
  if (!seconds.ok()) return seconds.status();
  spec.seconds_ = *seconds;
  if (std::popcount(spec.seconds_) > 1) {
    return bad(absl::StrCat("the seconds '", hms[2],
                            "' fire more than once a minute; backups start "
                            "at most once a minute (as 'every 1m')"));
  }

  if (i < words.size()) {
    if (LooksLikeTimeZone(words[i])) {
      return bad(absl::StrCat("the time zone '", words[i],
                              "' is not supported; end with UTC, or with "
                              "nothing for the host's zone"));
    }
    return bad(absl::StrCat("unexpected '", words[i],
                            "'; the order is [WEEKDAYS] [YYYY-MM-DD] "
                            "[HH:MM[:SS]] [UTC]"));
  }
  if (!spec.NextMatch(absl::CivilSecond(kMinYear, 1, 1, 0, 0, 0))) {
    return bad(
        "no calendar day matches it (a day the month does not have, or a "
        "date that is never that weekday)");
  }
  return spec;
}

bool CalendarSpec::DayMatches(absl::CivilDay day) const {
  // absl numbers Monday 0 .. Sunday 6, as weekdays_ does.
  const int weekday = static_cast<int>(absl::GetWeekday(day));
  return (days_ >> day.day() & 1) != 0 && (weekdays_ >> weekday & 1) != 0;
}

std::optional<CalendarSpec::Time> CalendarSpec::NextTime(Time from) const {
  for (int h = NextBit(hours_, from.hour); h >= 0; h = NextBit(hours_, h + 1)) {
    const bool same_hour = h == from.hour;
    for (int m = NextBit(minutes_, same_hour ? from.minute : 0); m >= 0;
         m = NextBit(minutes_, m + 1)) {
      const bool same_minute = same_hour && m == from.minute;
      const int s = NextBit(seconds_, same_minute ? from.second : 0);
      if (s >= 0) return Time{h, m, s};
    }
  }
  return std::nullopt;
}

std::optional<absl::CivilSecond> CalendarSpec::NextMatch(
    absl::CivilSecond from) const {
  absl::CivilDay day(from);
  Time start{from.hour(), from.minute(), from.second()};
  if (day.year() < kMinYear) {
    day = absl::CivilDay(kMinYear, 1, 1);
    start = Time{0, 0, 0};
  }
  // Whole years and months that cannot match are skipped at once, so even
  // "Mon *-02-29" takes a few hundred steps.
  while (day.year() <= kMaxYear) {
    if (!years_[day.year() - kMinYear]) {
      day = absl::CivilDay(absl::CivilYear(day) + 1);
    } else if ((months_ >> day.month() & 1) == 0) {
      day = absl::CivilDay(absl::CivilMonth(day) + 1);
    } else {
      if (DayMatches(day)) {
        if (std::optional<Time> t = NextTime(start)) {
          return absl::CivilSecond(day.year(), day.month(), day.day(), t->hour,
                                   t->minute, t->second);
        }
      }
      day += 1;
    }
    start = Time{0, 0, 0};
  }
  return std::nullopt;
}

absl::Time CalendarSpec::NextRun(absl::Time after, absl::TimeZone tz) const {
  const absl::TimeZone zone = utc_ ? absl::UTCTimeZone() : tz;
  // absl::FromCivil maps a skipped time to its gap's end and a repeated one
  // to its first occurrence, so civil order is instant order (never
  // decreasing) and the first match whose instant is past `after` is the
  // next run. Matches in a repeated hour can map to or before `after`;
  // those are stepped over.
  absl::CivilSecond from = absl::ToCivilSecond(after, zone) + 1;
  while (true) {
    std::optional<absl::CivilSecond> match = NextMatch(from);
    if (!match) return absl::InfiniteFuture();
    const absl::Time t = absl::FromCivil(*match, zone);
    if (t > after) return t;
    from = *match + 1;
  }
}

}  // namespace cbtd::agent
