// The device-mapper operations snapshot/ needs, behind an interface so the
// suspend/resume protocol can be tested with mocks and fakes. The real one
// (linux_device_mapper.cc) uses libdevmapper through common/libdevmapper.h.
//
// Units: every table position and length is in 512-byte sectors.
// Devices in tables are given as "major:minor" (the kernel prints them that
// way too), so a table read back from one device can be loaded into another.
//
// Thread-safety: implementations are safe to call from several threads.
#ifndef CBTD_SNAPSHOT_DEVICE_MAPPER_H_
#define CBTD_SNAPSHOT_DEVICE_MAPPER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/libdevmapper.h"

namespace cbtd::snapshot {

// The vocabulary is common/'s (common/libdevmapper.h), so a table read by
// one module can be handed to another unchanged.
using common::DmInfo;
using common::DmTable;
using common::DmTarget;
// "0 2048 linear 254:0 0; 2048 ..." for messages and tests.
using common::FormatDmTable;

// Sum of the targets' lengths.
uint64_t DmTableSectors(const DmTable& table);

// How full a dm-snapshot's COW store is, in percent, from its status line
// ("<used>/<total> <metadata>" in sectors); nullopt when the status says
// the snapshot is unusable ("Invalid", "Overflow", "Merge failed").
std::optional<double> SnapshotFillPercent(const std::string& status);

// The COW store's size in bytes from the same status line; 0 if unusable.
uint64_t SnapshotCowBytes(const std::string& status);

class DeviceMapper {
 public:
  virtual ~DeviceMapper() = default;

  // nullopt if `major` is not device-mapper's; NOT_FOUND if no such dm
  // device exists.
  virtual absl::StatusOr<std::optional<DmInfo>> InfoByDevice(
      uint32_t major, uint32_t minor) = 0;

  // nullopt if no dm device is called `name`.
  virtual absl::StatusOr<std::optional<DmInfo>> InfoByName(
      const std::string& name) = 0;

  // Every dm device (name, uuid, major:minor; target_types may be empty).
  virtual absl::StatusOr<std::vector<DmInfo>> List() = 0;

  // The live table / status of `name`. NOT_FOUND if there is no such
  // device.
  virtual absl::StatusOr<DmTable> Table(const std::string& name) = 0;
  virtual absl::StatusOr<DmTable> Status(const std::string& name) = 0;

  // Creates device `name` with `uuid` and `table`, live (resumed), read-only
  // if `read_only`; its /dev/mapper node exists on return. ALREADY_EXISTS if
  // the name or uuid is taken.
  virtual absl::Status Create(const std::string& name, const std::string& uuid,
                              const DmTable& table, bool read_only) = 0;

  // Loads `table` into the inactive slot of existing device `name`; it goes
  // live at the next suspend + resume.
  virtual absl::Status Load(const std::string& name, const DmTable& table) = 0;

  // Removes device `name` (fails, changing nothing, if it is open).
  virtual absl::Status Remove(const std::string& name) = 0;

  // Suspends `name` with a flush (in-flight I/O completes, new I/O waits)
  // and without freezing a filesystem on it (the caller freezes with
  // FIFREEZE). Suspending a suspended device succeeds and does nothing.
  virtual absl::Status Suspend(const std::string& name) = 0;

  // Resumes `name` (making a loaded table live); a no-op if it is not
  // suspended.
  virtual absl::Status Resume(const std::string& name) = 0;

  // Sends a target message (sector 0), e.g. "create_snap 5 1" to a thin
  // pool.
  virtual absl::Status Message(const std::string& name,
                               const std::string& message) = 0;
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_DEVICE_MAPPER_H_
