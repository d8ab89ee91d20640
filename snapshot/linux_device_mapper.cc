// DeviceMapper over libdevmapper (common/libdevmapper.h).
#include <memory>

#include "common/libdevmapper.h"
#include "snapshot/device_mapper.h"
#include "snapshot/linux.h"

namespace cbtd::snapshot {
namespace {

class LinuxDeviceMapper : public DeviceMapper {
 public:
  absl::StatusOr<std::optional<DmInfo>> InfoByDevice(uint32_t major,
                                                     uint32_t minor) override {
    return common::DmInfoByDevice(major, minor);
  }

  absl::StatusOr<std::optional<DmInfo>> InfoByName(
      const std::string& name) override {
    return common::DmInfoByName(name);
  }

  absl::StatusOr<std::vector<DmInfo>> List() override {
    return common::ListDmDevices();
  }

  absl::StatusOr<DmTable> Table(const std::string& name) override {
    return common::ReadDmTable(name);
  }

  absl::StatusOr<DmTable> Status(const std::string& name) override {
    return common::ReadDmStatus(name);
  }

  absl::Status Create(const std::string& name, const std::string& uuid,
                      const DmTable& table, bool read_only) override {
    return common::CreateDmDevice(name, uuid, table, read_only);
  }

  absl::Status Load(const std::string& name, const DmTable& table) override {
    return common::LoadDmTable(name, table);
  }

  absl::Status Remove(const std::string& name) override {
    return common::RemoveDmDevice(name);
  }

  absl::Status Suspend(const std::string& name) override {
    return common::SuspendDmDevice(name);
  }

  absl::Status Resume(const std::string& name) override {
    return common::ResumeDmDevice(name);
  }

  absl::Status Message(const std::string& name,
                       const std::string& message) override {
    return common::SendDmMessage(name, /*sector=*/0, message).status();
  }
};

}  // namespace

std::unique_ptr<DeviceMapper> NewLinuxDeviceMapper() {
  return std::make_unique<LinuxDeviceMapper>();
}

}  // namespace cbtd::snapshot
