// DeviceMapper over libdevmapper.
#include <libdevmapper.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "snapshot/device_mapper.h"
#include "snapshot/linux.h"

namespace cbtd::snapshot {
namespace {

struct TaskDeleter {
  void operator()(dm_task* t) const { dm_task_destroy(t); }
};
using Task = std::unique_ptr<dm_task, TaskDeleter>;

absl::Status DmError(const std::string& what) {
  return absl::UnavailableError(
      absl::StrCat("device-mapper: ", what,
                   " failed (see the libdevmapper message above; is the "
                   "dm_mod module loaded and are we root?)"));
}

class LinuxDeviceMapper : public DeviceMapper {
 public:
  absl::StatusOr<std::optional<DmInfo>> InfoByDevice(uint32_t major,
                                                     uint32_t minor) override {
    if (!dm_is_dm_major(major)) return std::optional<DmInfo>();
    Task t(dm_task_create(DM_DEVICE_TABLE));
    const std::string what = absl::StrCat("table of ", major, ":", minor);
    if (!t ||
        !dm_task_set_major_minor(t.get(), static_cast<int>(major),
                                 static_cast<int>(minor), 0) ||
        !dm_task_run(t.get())) {
      return DmError(what);
    }
    dm_info info{};
    if (!dm_task_get_info(t.get(), &info)) return DmError(what);
    if (!info.exists) {
      return absl::NotFoundError(
          absl::StrCat("no device-mapper device ", major, ":", minor));
    }
    DmInfo out;
    out.name = dm_task_get_name(t.get());
    const char* uuid = dm_task_get_uuid(t.get());
    if (uuid != nullptr) out.uuid = uuid;
    out.suspended = info.suspended != 0;
    void* next = nullptr;
    do {
      uint64_t start, length;
      char* type = nullptr;
      char* params = nullptr;
      next = dm_get_next_target(t.get(), next, &start, &length, &type, &params);
      if (type != nullptr) out.target_types.emplace_back(type);
    } while (next != nullptr);
    return std::optional<DmInfo>(std::move(out));
  }

  absl::Status Suspend(const std::string& name) override {
    Task t(dm_task_create(DM_DEVICE_SUSPEND));
    // skip_lockfs: filesystems are frozen with FIFREEZE by the caller; a
    // second (kernel) freeze of a frozen filesystem fails with EBUSY.
    if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
        !dm_task_skip_lockfs(t.get()) || !dm_task_run(t.get())) {
      return DmError(absl::StrCat("suspend ", name));
    }
    return absl::OkStatus();
  }

  absl::Status Resume(const std::string& name) override {
    Task info_task(dm_task_create(DM_DEVICE_INFO));
    dm_info info{};
    if (!info_task || !dm_task_set_name(info_task.get(), name.c_str()) ||
        !dm_task_run(info_task.get()) ||
        !dm_task_get_info(info_task.get(), &info)) {
      return DmError(absl::StrCat("info ", name));
    }
    if (!info.exists || !info.suspended) return absl::OkStatus();
    Task t(dm_task_create(DM_DEVICE_RESUME));
    if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
        !dm_task_run(t.get())) {
      return DmError(absl::StrCat("resume ", name));
    }
    return absl::OkStatus();
  }

  absl::Status Message(const std::string& name,
                       const std::string& message) override {
    Task t(dm_task_create(DM_DEVICE_TARGET_MSG));
    if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
        !dm_task_set_sector(t.get(), 0) ||
        !dm_task_set_message(t.get(), message.c_str()) ||
        !dm_task_run(t.get())) {
      return absl::FailedPreconditionError(
          absl::StrCat("device-mapper message '", message, "' to ", name,
                       " failed (see the kernel log: dmesg)"));
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<DeviceMapper> NewLinuxDeviceMapper() {
  return std::make_unique<LinuxDeviceMapper>();
}

}  // namespace cbtd::snapshot
