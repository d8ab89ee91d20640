#include "snapshot/naming.h"

#include <ctime>
#include <initializer_list>

namespace cbtd::snapshot {
namespace {

constexpr size_t kTimestampLength = 16;  // YYYYMMDDTHHMMSSZ

bool IsTimestamp(std::string_view ts) {
  if (ts.size() != kTimestampLength || ts[8] != 'T' || ts[15] != 'Z') {
    return false;
  }
  for (size_t i = 0; i < 15; ++i) {
    if (i == 8) continue;
    if (ts[i] < '0' || ts[i] > '9') return false;
  }
  return true;
}

// absl::StrCat takes absl::string_view, which is not std::string_view in
// this abseil build.
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

constexpr std::string_view kRealUuid = "CBTD-real-";
constexpr std::string_view kCowUuid = "CBTD-cow-";
constexpr std::string_view kSnapUuid = "CBTD-snap-";

}  // namespace

std::string SnapshotTimestamp(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string SnapshotName(std::string_view origin,
                         std::chrono::system_clock::time_point when) {
  return Cat({origin, kSnapshotInfix, SnapshotTimestamp(when)});
}

std::optional<ParsedSnapshotName> ParseSnapshotName(std::string_view name) {
  const size_t pos = name.rfind(kSnapshotInfix);
  if (pos == std::string_view::npos || pos == 0) return std::nullopt;
  std::string_view ts = name.substr(pos + kSnapshotInfix.size());
  if (!IsTimestamp(ts)) return std::nullopt;
  return ParsedSnapshotName{std::string(name.substr(0, pos)), std::string(ts)};
}

DmDeviceName DmHelperName(DmRole role, std::string_view origin,
                          std::string_view timestamp) {
  switch (role) {
    case DmRole::kReal:
      return {Cat({kDmNamePrefix, origin, "-real"}), Cat({kRealUuid, origin})};
    case DmRole::kCow:
      return {Cat({kDmNamePrefix, origin, "-cow-", timestamp}),
              Cat({kCowUuid, timestamp, "-", origin})};
    case DmRole::kSnapshot:
      break;
  }
  return {Cat({kDmNamePrefix, origin, "-", timestamp}),
          Cat({kSnapUuid, timestamp, "-", origin})};
}

std::string DmSnapshotName(std::string_view origin,
                           std::chrono::system_clock::time_point when) {
  return DmHelperName(DmRole::kSnapshot, origin, SnapshotTimestamp(when)).name;
}

bool SplitFullName(const std::string& full, std::string* vg,
                   std::string* name) {
  const size_t slash = full.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == full.size()) {
    return false;
  }
  *vg = full.substr(0, slash);
  *name = full.substr(slash + 1);
  return true;
}

std::optional<ParsedSnapshotName> ParseDmSnapshotName(std::string_view name) {
  if (!name.starts_with(kDmNamePrefix) ||
      name.size() < kDmNamePrefix.size() + 2 + kTimestampLength) {
    return std::nullopt;
  }
  std::string_view ts = name.substr(name.size() - kTimestampLength);
  std::string_view origin =
      name.substr(kDmNamePrefix.size(),
                  name.size() - kDmNamePrefix.size() - kTimestampLength - 1);
  if (!IsTimestamp(ts) || name[name.size() - kTimestampLength - 1] != '-') {
    return std::nullopt;
  }
  return ParsedSnapshotName{std::string(origin), std::string(ts)};
}

std::optional<ParsedDmDevice> ParseDmDevice(std::string_view name,
                                            std::string_view uuid) {
  ParsedDmDevice p;
  if (uuid.starts_with(kRealUuid)) {
    p.role = DmRole::kReal;
    p.origin = std::string(uuid.substr(kRealUuid.size()));
  } else {
    std::string_view rest;
    if (uuid.starts_with(kCowUuid)) {
      p.role = DmRole::kCow;
      rest = uuid.substr(kCowUuid.size());
    } else if (uuid.starts_with(kSnapUuid)) {
      p.role = DmRole::kSnapshot;
      rest = uuid.substr(kSnapUuid.size());
    } else {
      return std::nullopt;
    }
    if (rest.size() < kTimestampLength + 2 ||
        !IsTimestamp(rest.substr(0, kTimestampLength)) ||
        rest[kTimestampLength] != '-') {
      return std::nullopt;
    }
    p.timestamp = std::string(rest.substr(0, kTimestampLength));
    p.origin = std::string(rest.substr(kTimestampLength + 1));
  }
  if (p.origin.empty() ||
      DmHelperName(p.role, p.origin, p.timestamp).name != name) {
    return std::nullopt;
  }
  return p;
}

}  // namespace cbtd::snapshot
