#include "snapshot/naming.h"

#include <ctime>

#include "absl/strings/str_cat.h"

namespace cbtd::snapshot {

std::string SnapshotName(std::string_view origin,
                         std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return absl::StrCat(std::string(origin), std::string(kSnapshotInfix), buf);
}

std::optional<ParsedSnapshotName> ParseSnapshotName(std::string_view name) {
  const size_t pos = name.rfind(kSnapshotInfix);
  if (pos == std::string_view::npos || pos == 0) return std::nullopt;
  std::string_view ts = name.substr(pos + kSnapshotInfix.size());
  // YYYYMMDDTHHMMSSZ
  if (ts.size() != 16 || ts[8] != 'T' || ts[15] != 'Z') return std::nullopt;
  for (size_t i = 0; i < 15; ++i) {
    if (i == 8) continue;
    if (ts[i] < '0' || ts[i] > '9') return std::nullopt;
  }
  return ParsedSnapshotName{std::string(name.substr(0, pos)), std::string(ts)};
}

}  // namespace cbtd::snapshot
