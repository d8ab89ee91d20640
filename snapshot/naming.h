// How the agent names and tags the snapshots it creates, so that it can
// recognise its own and never touch anything else.
//
// A snapshot of LV `data` taken at 2026-11-21T22:40:05Z is named
// `data.cbtd-20261121T224005Z` and carries the LVM tag `cbtd`.
//
// A device-mapper snapshot (dm_snapshotter.h) of dm device NAME taken at
// timestamp TS is made of three dm devices; the dm UUID, always starting
// with `CBTD-`, is the ownership mark (like the LVM tag) and says the role:
//
//   cbtd-NAME-real     CBTD-real-NAME      NAME's original table (shared by
//                                          every snapshot of NAME)
//   cbtd-NAME-cow-TS   CBTD-cow-TS-NAME    linear over the COW store
//   cbtd-NAME-TS       CBTD-snap-TS-NAME   the snapshot (read-only)
//
// A device is the agent's only if its name AND its uuid both match one row.
#ifndef CBTD_SNAPSHOT_NAMING_H_
#define CBTD_SNAPSHOT_NAMING_H_

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cbtd::snapshot {

inline constexpr std::string_view kSnapshotTag = "cbtd";
inline constexpr std::string_view kSnapshotInfix = ".cbtd-";
inline constexpr std::string_view kDmUuidPrefix = "CBTD-";
inline constexpr std::string_view kDmNamePrefix = "cbtd-";
// The longest origin dm name whose helper names and uuids still fit the
// kernel's 127-character limits.
inline constexpr size_t kMaxDmOriginNameLength = 100;

// UTC timestamp (second resolution), e.g. 20261121T224005Z.
std::string SnapshotTimestamp(std::chrono::system_clock::time_point when);

// `origin` + kSnapshotInfix + SnapshotTimestamp(when).
std::string SnapshotName(std::string_view origin,
                         std::chrono::system_clock::time_point when);

struct ParsedSnapshotName {
  std::string origin;
  std::string timestamp;  // e.g. 20261121T224005Z
};

// Inverse of SnapshotName; nullopt for any name the agent did not make.
std::optional<ParsedSnapshotName> ParseSnapshotName(std::string_view name);

enum class DmRole { kReal, kCow, kSnapshot };

struct DmDeviceName {
  std::string name;
  std::string uuid;
};

// The rows of the table above. `timestamp` is ignored for kReal.
DmDeviceName DmHelperName(DmRole role, std::string_view origin,
                          std::string_view timestamp);

// "cbtd-" + origin + "-" + SnapshotTimestamp(when).
std::string DmSnapshotName(std::string_view origin,
                           std::chrono::system_clock::time_point when);

// Splits a snapshot's full name "VG/NAME" (SnapshotInfo::FullName; "dm" for
// dm snapshots); false unless both parts are non-empty.
bool SplitFullName(const std::string& full, std::string* vg, std::string* name);

// Inverse of DmSnapshotName (by name alone; ownership needs the uuid too).
std::optional<ParsedSnapshotName> ParseDmSnapshotName(std::string_view name);

struct ParsedDmDevice {
  DmRole role = DmRole::kSnapshot;
  std::string origin;
  std::string timestamp;  // empty for kReal
};

// The role of a dm device the agent made: nullopt unless `uuid` has one of
// the forms above AND `name` is exactly the matching name.
std::optional<ParsedDmDevice> ParseDmDevice(std::string_view name,
                                            std::string_view uuid);

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_NAMING_H_
