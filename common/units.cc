#include "common/units.h"

#include <cctype>
#include <charconv>
#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace cbtd::common {
namespace {

// Reads a decimal prefix of `text`; false when there is none or it overflows.
bool ConsumeNumber(std::string_view& text, uint64_t& value) {
  size_t i = 0;
  value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return false;
    }
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return false;
  text.remove_prefix(i);
  return true;
}

}  // namespace

std::string_view TrimSpace(std::string_view text) {
  while (!text.empty() &&
         std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() &&
         std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool ParseInt(std::string_view text, long long& out) {
  long long v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) return false;
  out = v;
  return true;
}

bool ParseDecimalUint64(std::string_view s, uint64_t* out) {
  uint64_t v = 0;
  if (s.empty() || !ConsumeNumber(s, v) || !s.empty()) return false;
  *out = v;
  return true;
}

absl::StatusOr<uint64_t> ParseBytes(std::string_view text) {
  const std::string original(text);
  text = TrimSpace(text);
  uint64_t value = 0;
  if (!ConsumeNumber(text, value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", original,
                     "' is not a size; write bytes or a number with K, M, G "
                     "or T (e.g. 64K)"));
  }
  std::string unit = absl::AsciiStrToUpper(std::string(text));
  if (unit.ends_with("IB")) unit.resize(unit.size() - 2);
  if (unit.ends_with("B")) unit.resize(unit.size() - 1);
  int shift = 0;
  if (unit.empty()) {
    shift = 0;
  } else if (unit == "K") {
    shift = 10;
  } else if (unit == "M") {
    shift = 20;
  } else if (unit == "G") {
    shift = 30;
  } else if (unit == "T") {
    shift = 40;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", original, "' has an unknown size unit; use K, M, G or T"));
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", original, "' is too large"));
  }
  return value << shift;
}

absl::StatusOr<absl::Duration> ParseDurationSpec(std::string_view text) {
  const std::string original(text);
  text = TrimSpace(text);
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", original, "' is not a duration; write e.g. 10s, 5m, 1h30m or 1d"));
  };
  if (text.empty()) return bad();
  absl::Duration total = absl::ZeroDuration();
  while (!text.empty()) {
    uint64_t value = 0;
    if (!ConsumeNumber(text, value) || text.empty() || value > 1000000000ULL) {
      return bad();
    }
    const auto n = static_cast<int64_t>(value);
    switch (text.front()) {
      case 's':
        total += absl::Seconds(n);
        break;
      case 'm':
        total += absl::Minutes(n);
        break;
      case 'h':
        total += absl::Hours(n);
        break;
      case 'd':
        total += absl::Hours(24 * n);
        break;
      default:
        return bad();
    }
    text.remove_prefix(1);
  }
  if (total <= absl::ZeroDuration()) return bad();
  return total;
}

}  // namespace cbtd::common
