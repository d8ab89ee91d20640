#include "common/libdevmapper.h"

#include <libdevmapper.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cbtd::common {
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

// The error of a task that ran and failed, by the kernel's errno.
absl::Status RunError(dm_task* t, const std::string& what) {
  const int err = dm_task_get_errno(t);
  const std::string msg = absl::StrCat("device-mapper: ", what, " failed");
  switch (err) {
    case EEXIST:
      return absl::AlreadyExistsError(absl::StrCat(msg, ": already exists"));
    case ENXIO:
    case ENODEV:
      return absl::NotFoundError(absl::StrCat(msg, ": no such device"));
    case EBUSY:
      return absl::FailedPreconditionError(
          absl::StrCat(msg,
                       ": the device is in use (open, mounted, or "
                       "under another device)"));
    case EINVAL:
      return absl::InvalidArgumentError(
          absl::StrCat(msg, ": the kernel refused the table (see dmesg)"));
    default:
      return DmError(what);
  }
}

// Runs `t`, then waits for udev (or, without udev, lets libdevmapper make
// the /dev/mapper nodes itself) so that a created device's node exists.
bool RunWithNodes(dm_task* t) {
  uint32_t cookie = 0;
  if (!dm_task_set_cookie(t, &cookie, 0)) return false;
  const int ok = dm_task_run(t);
  (void)dm_udev_wait(cookie);
  return ok != 0;
}

DmTable Targets(dm_task* t) {
  DmTable out;
  void* next = nullptr;
  do {
    uint64_t start = 0, length = 0;
    char* type = nullptr;
    char* params = nullptr;
    next = dm_get_next_target(t, next, &start, &length, &type, &params);
    if (type != nullptr) {
      out.push_back(DmTarget{start, length, type, params ? params : ""});
    }
  } while (next != nullptr);
  return out;
}

absl::StatusOr<std::optional<DmInfo>> ToInfo(dm_task* t) {
  dm_info info{};
  if (!dm_task_get_info(t, &info)) return DmError("get info");
  if (!info.exists) return std::optional<DmInfo>();
  DmInfo out;
  out.name = dm_task_get_name(t);
  const char* uuid = dm_task_get_uuid(t);
  if (uuid != nullptr) out.uuid = uuid;
  out.suspended = info.suspended != 0;
  out.major = static_cast<uint32_t>(info.major);
  out.minor = static_cast<uint32_t>(info.minor);
  out.open_count = info.open_count;
  for (const DmTarget& target : Targets(t)) {
    out.target_types.push_back(target.type);
  }
  return std::optional<DmInfo>(std::move(out));
}

bool AddTargets(dm_task* t, const DmTable& table) {
  for (const DmTarget& target : table) {
    if (!dm_task_add_target(t, target.start_sector, target.length_sectors,
                            target.type.c_str(), target.params.c_str())) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<DmTable> Read(int type, const std::string& name,
                             const char* what_kind) {
  Task t(dm_task_create(type));
  const std::string what = absl::StrCat(what_kind, " of ", name);
  if (!t || !dm_task_set_name(t.get(), name.c_str())) return DmError(what);
  if (!dm_task_run(t.get())) return RunError(t.get(), what);
  dm_info info{};
  if (!dm_task_get_info(t.get(), &info)) return DmError(what);
  if (!info.exists) {
    return absl::NotFoundError(absl::StrCat("no device-mapper device ", name));
  }
  return Targets(t.get());
}

}  // namespace

std::string FormatDmTable(const DmTable& table) {
  return absl::StrJoin(table, "; ", [](std::string* out, const DmTarget& t) {
    absl::StrAppend(out, t.start_sector, " ", t.length_sectors, " ", t.type,
                    " ", t.params);
  });
}

absl::StatusOr<std::optional<DmInfo>> DmInfoByDevice(uint32_t major,
                                                     uint32_t minor) {
  if (!dm_is_dm_major(major)) return std::optional<DmInfo>();
  Task t(dm_task_create(DM_DEVICE_TABLE));
  const std::string what = absl::StrCat("table of ", major, ":", minor);
  if (!t ||
      !dm_task_set_major_minor(t.get(), static_cast<int>(major),
                               static_cast<int>(minor), 0) ||
      !dm_task_run(t.get())) {
    return DmError(what);
  }
  absl::StatusOr<std::optional<DmInfo>> info = ToInfo(t.get());
  if (info.ok() && !info->has_value()) {
    return absl::NotFoundError(
        absl::StrCat("no device-mapper device ", major, ":", minor));
  }
  return info;
}

absl::StatusOr<std::optional<DmInfo>> DmInfoByName(const std::string& name) {
  // A status task, because libdevmapper reports a missing device for it
  // quietly (exists = 0) where a table task logs an error.
  Task t(dm_task_create(DM_DEVICE_STATUS));
  if (!t || !dm_task_set_name(t.get(), name.c_str())) {
    return DmError("status of " + name);
  }
  if (!dm_task_run(t.get())) {
    const int err = dm_task_get_errno(t.get());
    if (err == ENXIO || err == ENODEV) return std::optional<DmInfo>();
    return RunError(t.get(), "status of " + name);
  }
  return ToInfo(t.get());
}

absl::StatusOr<std::vector<DmInfo>> ListDmDevices() {
  Task t(dm_task_create(DM_DEVICE_LIST));
  if (!t || !dm_task_run(t.get())) return DmError("list devices");
  dm_names* names = dm_task_get_names(t.get());
  std::vector<std::string> all;
  if (names != nullptr && names->dev != 0) {
    for (;;) {
      all.emplace_back(names->name);
      if (names->next == 0) break;
      names = reinterpret_cast<dm_names*>(reinterpret_cast<char*>(names) +
                                          names->next);
    }
  }
  std::vector<DmInfo> out;
  for (const std::string& name : all) {
    absl::StatusOr<std::optional<DmInfo>> info = DmInfoByName(name);
    if (!info.ok()) return info.status();
    if (info->has_value()) out.push_back(**std::move(info));  // else: gone
  }
  return out;
}

absl::StatusOr<DmTable> ReadDmTable(const std::string& name) {
  return Read(DM_DEVICE_TABLE, name, "table");
}

absl::StatusOr<DmTable> ReadDmStatus(const std::string& name) {
  return Read(DM_DEVICE_STATUS, name, "status");
}

absl::Status CreateDmDevice(const std::string& name, const std::string& uuid,
                            const DmTable& table, bool read_only) {
  Task t(dm_task_create(DM_DEVICE_CREATE));
  const std::string what =
      absl::StrCat("create ", name, " (", FormatDmTable(table), ")");
  if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
      (!uuid.empty() && !dm_task_set_uuid(t.get(), uuid.c_str())) ||
      (read_only && !dm_task_set_ro(t.get())) || !AddTargets(t.get(), table)) {
    return DmError(what);
  }
  if (!RunWithNodes(t.get())) return RunError(t.get(), what);
  return absl::OkStatus();
}

absl::Status LoadDmTable(const std::string& name, const DmTable& table) {
  Task t(dm_task_create(DM_DEVICE_RELOAD));
  const std::string what =
      absl::StrCat("load into ", name, " (", FormatDmTable(table), ")");
  if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
      !AddTargets(t.get(), table)) {
    return DmError(what);
  }
  if (!dm_task_run(t.get())) return RunError(t.get(), what);
  return absl::OkStatus();
}

absl::Status RemoveDmDevice(const std::string& name) {
  Task t(dm_task_create(DM_DEVICE_REMOVE));
  if (!t || !dm_task_set_name(t.get(), name.c_str())) {
    return DmError("remove " + name);
  }
  // udev's scanners open new devices briefly; retry instead of failing.
  (void)dm_task_retry_remove(t.get());
  if (!RunWithNodes(t.get())) return RunError(t.get(), "remove " + name);
  return absl::OkStatus();
}

absl::Status SuspendDmDevice(const std::string& name) {
  Task t(dm_task_create(DM_DEVICE_SUSPEND));
  // skip_lockfs: filesystems are frozen with FIFREEZE by the caller; a
  // second (kernel) freeze of a frozen filesystem fails with EBUSY.
  if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
      !dm_task_skip_lockfs(t.get()) || !dm_task_run(t.get())) {
    return DmError(absl::StrCat("suspend ", name));
  }
  return absl::OkStatus();
}

absl::Status ResumeDmDevice(const std::string& name) {
  Task info_task(dm_task_create(DM_DEVICE_INFO));
  dm_info info{};
  if (!info_task || !dm_task_set_name(info_task.get(), name.c_str()) ||
      !dm_task_run(info_task.get()) ||
      !dm_task_get_info(info_task.get(), &info)) {
    return DmError(absl::StrCat("info ", name));
  }
  if (!info.exists || !info.suspended) return absl::OkStatus();
  Task t(dm_task_create(DM_DEVICE_RESUME));
  if (!t || !dm_task_set_name(t.get(), name.c_str()) || !dm_task_run(t.get())) {
    return DmError(absl::StrCat("resume ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SendDmMessage(const std::string& name,
                                          uint64_t sector,
                                          const std::string& text) {
  Task t(dm_task_create(DM_DEVICE_TARGET_MSG));
  if (!t || !dm_task_set_name(t.get(), name.c_str()) ||
      !dm_task_set_sector(t.get(), sector) ||
      !dm_task_set_message(t.get(), text.c_str()) || !dm_task_run(t.get())) {
    const int err = t ? dm_task_get_errno(t.get()) : 0;
    return absl::FailedPreconditionError(absl::StrCat(
        "device-mapper message '", text, "' to ", name, " failed",
        err != 0 ? absl::StrCat(": ", std::strerror(err)) : std::string(),
        " (see the kernel log: dmesg)"));
  }
  const char* reply = dm_task_get_message_response(t.get());
  return std::string(reply != nullptr ? reply : "");
}

}  // namespace cbtd::common
