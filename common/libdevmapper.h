// device-mapper through libdevmapper: the one place cbtd calls it. Each
// module adapts these calls to a narrow interface of its own
// (snapshot/device_mapper.h, cbt/device_mapper.h) so its logic can be tested
// with fakes; nothing else includes <libdevmapper.h>.
//
// Units: every table position and length is in 512-byte sectors.
// Devices in tables are given as "major:minor" (the kernel prints them that
// way) or as a block device path (the kernel resolves it when loading).
//
// Devices are created and removed with udev synchronisation when udev runs,
// and without it libdevmapper makes the /dev/mapper nodes itself, so a
// created device's node exists when the call returns.
//
// Errors name the device and the operation. By the kernel's errno: EEXIST
// -> ALREADY_EXISTS, ENXIO/ENODEV -> NOT_FOUND, EBUSY -> FAILED_PRECONDITION
// (in use), EINVAL -> INVALID_ARGUMENT (table refused); anything else
// (no dm_mod, not root) -> UNAVAILABLE.
//
// Thread-safety: every call is independent and safe from several threads.
#ifndef CBTD_COMMON_LIBDEVMAPPER_H_
#define CBTD_COMMON_LIBDEVMAPPER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::common {

struct DmInfo {
  std::string name;  // e.g. "vg-data"
  std::string uuid;  // e.g. "LVM-<vg uuid><lv uuid>", may be empty
  bool suspended = false;
  std::vector<std::string> target_types;  // live table, e.g. {"thin"}
  uint32_t major = 0;
  uint32_t minor = 0;
  // How many times the device is open: a mount, a holder (another dm
  // device) or a process each count.
  int32_t open_count = 0;
};

// One line of a table (what `dmsetup table` prints) or of a status (what
// `dmsetup status` prints; then `params` is the target's status).
struct DmTarget {
  uint64_t start_sector = 0;
  uint64_t length_sectors = 0;
  std::string type;    // "linear", "snapshot", ...
  std::string params;  // "254:0 0", "254:3 254:4 P 8", ...
  bool operator==(const DmTarget&) const = default;
};
using DmTable = std::vector<DmTarget>;

// "0 2048 linear 254:0 0; 2048 ..." for messages and tests.
std::string FormatDmTable(const DmTable& table);

// nullopt if `major` is not device-mapper's; NOT_FOUND if no such dm
// device exists.
absl::StatusOr<std::optional<DmInfo>> DmInfoByDevice(uint32_t major,
                                                     uint32_t minor);

// nullopt if no dm device is called `name`.
absl::StatusOr<std::optional<DmInfo>> DmInfoByName(const std::string& name);

// Every dm device (name, uuid, major:minor, target types).
absl::StatusOr<std::vector<DmInfo>> ListDmDevices();

// The live table / status of `name`. NOT_FOUND if there is no such device.
absl::StatusOr<DmTable> ReadDmTable(const std::string& name);
absl::StatusOr<DmTable> ReadDmStatus(const std::string& name);

// Creates device `name` with `uuid` (none if empty) and `table`, live
// (resumed), read-only if `read_only`; its /dev/mapper node exists on
// return. ALREADY_EXISTS if the name or uuid is taken.
absl::Status CreateDmDevice(const std::string& name, const std::string& uuid,
                            const DmTable& table, bool read_only);

// Loads `table` into the inactive slot of existing device `name`; it goes
// live at the next suspend + resume.
absl::Status LoadDmTable(const std::string& name, const DmTable& table);

// Removes device `name` (fails, changing nothing, if it is open; retries
// while udev's scanners hold it briefly).
absl::Status RemoveDmDevice(const std::string& name);

// Suspends `name` with a flush and without freezing a filesystem on it (the
// caller freezes with FIFREEZE). Suspending a suspended device succeeds.
absl::Status SuspendDmDevice(const std::string& name);

// Resumes `name` (making a loaded table live); a no-op if it is not
// suspended.
absl::Status ResumeDmDevice(const std::string& name);

// Sends target message `text` to the target of `name` at `sector` and
// returns the target's reply (empty for most messages).
// FAILED_PRECONDITION, naming the device and the message, when the target
// refuses it (its reason is in the kernel log).
absl::StatusOr<std::string> SendDmMessage(const std::string& name,
                                          uint64_t sector,
                                          const std::string& text);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_LIBDEVMAPPER_H_
