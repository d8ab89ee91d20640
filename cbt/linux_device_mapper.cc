// DeviceMapper over libdevmapper (common/libdevmapper.h).
#include <memory>

#include "cbt/device_mapper.h"
#include "common/libdevmapper.h"

namespace cbtd::cbt {
namespace {

class LinuxDeviceMapper : public DeviceMapper {
 public:
  absl::StatusOr<DmTable> Table(const std::string& name) override {
    return common::ReadDmTable(name);
  }

  absl::StatusOr<DmTable> Status(const std::string& name) override {
    return common::ReadDmStatus(name);
  }

  absl::StatusOr<std::string> Message(const std::string& name, uint64_t sector,
                                      const std::string& text) override {
    return common::SendDmMessage(name, sector, text);
  }

  absl::Status Create(const std::string& name, const std::string& uuid,
                      const DmTable& table) override {
    return common::CreateDmDevice(name, uuid, table, /*read_only=*/false);
  }

  absl::Status Remove(const std::string& name) override {
    return common::RemoveDmDevice(name);
  }

  absl::StatusOr<std::optional<std::string>> Uuid(
      const std::string& name) override {
    absl::StatusOr<std::optional<common::DmInfo>> info =
        common::DmInfoByName(name);
    if (!info.ok()) return info.status();
    if (!info->has_value()) return std::optional<std::string>();
    return std::optional<std::string>((*info)->uuid);
  }
};

}  // namespace

std::unique_ptr<DeviceMapper> NewLinuxDeviceMapper() {
  return std::make_unique<LinuxDeviceMapper>();
}

}  // namespace cbtd::cbt
