// Parsers for the human-written quantities in cbtd.conf and on cbtctl's
// command line: sizes ("64K", "1G") and durations ("10s", "1h30m", "2d").
#ifndef CBTD_COMMON_UNITS_H_
#define CBTD_COMMON_UNITS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cbtd::common {

// "4096", "64K", "4M", "1G", "2T" (binary multiples, optional "iB"/"B").
// INVALID_ARGUMENT on anything else or on overflow.
absl::StatusOr<uint64_t> ParseBytes(std::string_view text);

// One or more <number><unit> terms, unit in s, m, h, d: "90s", "1h30m".
// INVALID_ARGUMENT on an empty, unitless or zero-length text.
absl::StatusOr<absl::Duration> ParseDurationSpec(std::string_view text);

// `text` without leading and trailing ASCII whitespace. (Debian's abseil
// does not alias absl::string_view to std::string_view, so absl's string
// helpers do not take std::string_view.)
std::string_view TrimSpace(std::string_view text);

// A whole decimal number, optionally negative; false on anything else.
bool ParseInt(std::string_view text, long long& out);

// Digits only (no sign, no space), at most UINT64_MAX; false on anything
// else, leaving `out` alone. For machine-written numbers (kernel and tool
// output) and exact command-line values.
bool ParseDecimalUint64(std::string_view s, uint64_t* out);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_UNITS_H_
