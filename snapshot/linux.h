// Factories for the real (Linux) implementations of snapshot/'s OS
// interfaces. Only main()s and VM-facing tools call these.
#ifndef CBTD_SNAPSHOT_LINUX_H_
#define CBTD_SNAPSHOT_LINUX_H_

#include <chrono>
#include <memory>

#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/lvm.h"

namespace cbtd::snapshot {

struct LinuxLvmOptions {
  // Upper bound for one lvm2 command; a hung lvcreate is killed after it.
  std::chrono::milliseconds command_timeout{std::chrono::seconds(120)};
};

std::unique_ptr<Lvm> NewLinuxLvm(const LinuxLvmOptions& options = {});
std::unique_ptr<DeviceMapper> NewLinuxDeviceMapper();
std::unique_ptr<Host> NewLinuxHost();

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_LINUX_H_
