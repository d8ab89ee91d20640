// The device-mapper operations snapshot/ needs, behind an interface so the
// suspend/resume protocol can be tested with mocks. The real one
// (linux_device_mapper.cc) uses libdevmapper.
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

namespace cbtd::snapshot {

struct DmInfo {
  std::string name;  // e.g. "vg-data"
  std::string uuid;  // e.g. "LVM-<vg uuid><lv uuid>", may be empty
  bool suspended = false;
  std::vector<std::string> target_types;  // live table, e.g. {"thin"}
};

class DeviceMapper {
 public:
  virtual ~DeviceMapper() = default;

  // nullopt if `major` is not device-mapper's; NOT_FOUND if no such dm
  // device exists.
  virtual absl::StatusOr<std::optional<DmInfo>> InfoByDevice(
      uint32_t major, uint32_t minor) = 0;

  // Suspends `name` with a flush (in-flight I/O completes, new I/O waits)
  // and without freezing a filesystem on it (the caller freezes with
  // FIFREEZE). Suspending a suspended device succeeds and does nothing.
  virtual absl::Status Suspend(const std::string& name) = 0;

  // Resumes `name`; a no-op if it is not suspended.
  virtual absl::Status Resume(const std::string& name) = 0;

  // Sends a target message (sector 0), e.g. "create_snap 5 1" to a thin
  // pool.
  virtual absl::Status Message(const std::string& name,
                               const std::string& message) = 0;
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_DEVICE_MAPPER_H_
