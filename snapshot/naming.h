// How the agent names and tags the snapshots it creates, so that it can
// recognise its own and never touch anything else.
//
// A snapshot of LV `data` taken at 2026-11-21T22:40:05Z is named
// `data.cbtd-20261121T224005Z` and carries the LVM tag `cbtd`.
#ifndef CBTD_SNAPSHOT_NAMING_H_
#define CBTD_SNAPSHOT_NAMING_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace cbtd::snapshot {

inline constexpr std::string_view kSnapshotTag = "cbtd";
inline constexpr std::string_view kSnapshotInfix = ".cbtd-";

// `origin` + kSnapshotInfix + UTC timestamp (second resolution).
std::string SnapshotName(std::string_view origin,
                         std::chrono::system_clock::time_point when);

struct ParsedSnapshotName {
  std::string origin;
  std::string timestamp;  // e.g. 20261121T224005Z
};

// Inverse of SnapshotName; nullopt for any name the agent did not make.
std::optional<ParsedSnapshotName> ParseSnapshotName(std::string_view name);

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_NAMING_H_
