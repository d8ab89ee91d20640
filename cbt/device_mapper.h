// The device-mapper operations cbt/ needs (dm-era stacks, thin-pool and era
// metadata snapshots), behind an interface so the protocols can be tested
// with a fake. The real one (linux_device_mapper.cc) uses libdevmapper
// through common/libdevmapper.h.
//
// Units: table positions and lengths are in 512-byte sectors. A Status()
// target's `params` is the target's status line (for a thin pool:
// "<transaction> <meta used/total> <data used/total> <held root> ...").
//
// Thread-safety: implementations are safe to call from several threads.
#ifndef CBTD_CBT_DEVICE_MAPPER_H_
#define CBTD_CBT_DEVICE_MAPPER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/libdevmapper.h"

namespace cbtd::cbt {

using common::DmTable;
using common::DmTarget;

class DeviceMapper {
 public:
  virtual ~DeviceMapper() = default;

  // The live table / status of `name`. NOT_FOUND if there is no such
  // device.
  virtual absl::StatusOr<DmTable> Table(const std::string& name) = 0;
  virtual absl::StatusOr<DmTable> Status(const std::string& name) = 0;

  // Sends target message `text` to the target of `name` at `sector` and
  // returns its reply (empty for most messages). An error names the device
  // and the message.
  virtual absl::StatusOr<std::string> Message(const std::string& name,
                                              uint64_t sector,
                                              const std::string& text) = 0;

  // Creates device `name` with `uuid` and `table`, live and writable; its
  // /dev/mapper node exists on return. ALREADY_EXISTS if the name or uuid
  // is taken.
  virtual absl::Status Create(const std::string& name, const std::string& uuid,
                              const DmTable& table) = 0;

  // Removes device `name` (fails, changing nothing, if it is open).
  virtual absl::Status Remove(const std::string& name) = 0;

  // The dm UUID of device `name` ("" when it has none); nullopt when no
  // device is called `name`.
  virtual absl::StatusOr<std::optional<std::string>> Uuid(
      const std::string& name) = 0;
};

// libdevmapper (linux_device_mapper.cc).
std::unique_ptr<DeviceMapper> NewLinuxDeviceMapper();

// The single target of `table` (a table or status of `dm_name`), which
// must be of `type`; FAILED_PRECONDITION naming the device and what it has
// otherwise.
absl::StatusOr<DmTarget> SingleTarget(const DmTable& table,
                                      const std::string& type,
                                      const std::string& dm_name);

// Word `index` (0-based, whitespace separated) of a target's params;
// INVALID_ARGUMENT naming the device and the params if there is none.
absl::StatusOr<std::string> ParamField(const DmTarget& target, size_t index,
                                       const std::string& dm_name);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_DEVICE_MAPPER_H_
