#include "snapshot/volume.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cbtd::snapshot {
namespace {

// dm UUIDs lvm2 gives LVs: "LVM-" + 32 chars VG UUID + 32 chars LV UUID,
// plus "-suffix" for the hidden layers (-tpool, -real, -cow, ...).
constexpr size_t kLvmUuidLength = 4 + 32 + 32;

bool IsThickSegtype(const std::string& s) {
  return s == "linear" || s == "striped" || absl::StartsWith(s, "raid") ||
         s == "mirror";
}

}  // namespace

std::string_view VolumeKindName(VolumeKind kind) {
  switch (kind) {
    case VolumeKind::kThinLv:
      return "thin";
    case VolumeKind::kThickLv:
      return "thick";
    case VolumeKind::kOtherDm:
      return "dm";
    case VolumeKind::kBlockDevice:
      return "block";
  }
  return "unknown";
}

absl::StatusOr<VolumeInfo> DiscoverVolume(const std::string& path_in, Lvm& lvm,
                                          DeviceMapper& dm, Host& host) {
  VolumeInfo v;
  v.path = path_in;
  if (!path_in.empty() && path_in[0] != '/') v.path = "/dev/" + path_in;

  absl::StatusOr<BlockDeviceId> id = host.StatBlockDevice(v.path);
  if (absl::IsNotFound(id.status())) {
    return absl::NotFoundError(absl::StrCat(
        "volume ", v.path,
        " does not exist: no such LV or device (check the name with `lvs`; "
        "an inactive LV has no device: `lvchange -ay VG/LV`)"));
  }
  if (!id.ok()) return id.status();
  v.major = id->major;
  v.minor = id->minor;
  v.size_bytes = id->size_bytes;

  absl::StatusOr<std::optional<DmInfo>> info =
      dm.InfoByDevice(v.major, v.minor);
  if (!info.ok()) return info.status();
  if (!info->has_value()) {
    v.kind = VolumeKind::kBlockDevice;
    v.not_snapshottable_reason = absl::StrCat(
        v.path,
        " is a plain block device, not an LVM LV or device-mapper volume; "
        "cbtd can only snapshot LVs (move the data onto an LV), or back it "
        "up without a snapshot while nothing writes to it");
    return v;
  }
  const DmInfo& d = **info;
  v.dm_name = d.name;
  v.uuid = d.uuid;
  v.kind = VolumeKind::kOtherDm;
  if (!absl::StartsWith(d.uuid, "LVM-")) {
    v.not_snapshottable_reason = absl::StrCat(
        v.path, " is device-mapper device ", d.name,
        " (targets: ", absl::StrJoin(d.target_types, ","),
        ") that lvm2 does not manage; cbtd snapshots LVM thin and thick "
        "LVs only");
    return v;
  }
  if (absl::EndsWith(d.uuid, "-pool")) {
    v.not_snapshottable_reason =
        absl::StrCat(v.path,
                     " is a thin pool; cbtd snapshots the thin LVs in a pool, "
                     "not the pool itself");
    return v;
  }
  if (d.uuid.size() > kLvmUuidLength) {
    v.not_snapshottable_reason =
        absl::StrCat(v.path, " is ", d.name, ", an internal layer of an LV (",
                     d.uuid.substr(kLvmUuidLength),
                     "); give the LV itself, e.g. /dev/VG/LV");
    return v;
  }

  absl::StatusOr<std::vector<LvReport>> lvs = lvm.ListLvs("");
  if (!lvs.ok()) return lvs.status();
  const LvReport* lv = nullptr;
  for (const LvReport& r : *lvs) {
    if (r.kernel_major == static_cast<int>(v.major) &&
        r.kernel_minor == static_cast<int>(v.minor)) {
      lv = &r;
      break;
    }
  }
  if (lv == nullptr) {
    v.not_snapshottable_reason = absl::StrCat(
        v.path, " (", d.name,
        ") has an LVM UUID but lvs does not report it as an active LV; "
        "run `lvs -a` and retry");
    return v;
  }
  v.vg = lv->vg;
  v.lv = lv->name;
  v.uuid = lv->uuid;
  v.tags = lv->tags;
  v.origin = lv->origin;
  if (lv->segtype == "thin") {
    v.kind = VolumeKind::kThinLv;
    v.thin_id = lv->thin_id;
    v.pool_lv = lv->pool_lv;
    v.pool_dm_name = DmName(v.vg, v.pool_lv) + "-tpool";
    v.pool_metadata_dm_path =
        "/dev/mapper/" + DmName(v.vg, v.pool_lv + "_tmeta");
    for (const LvReport& r : *lvs) {
      if (r.vg == v.vg && r.name == v.pool_lv) {
        v.pool_data_percent = r.data_percent;
        v.pool_metadata_percent = r.metadata_percent;
      }
    }
  } else if (IsThickSegtype(lv->segtype) && lv->origin.empty()) {
    v.kind = VolumeKind::kThickLv;
  } else if (IsThickSegtype(lv->segtype)) {
    v.not_snapshottable_reason =
        absl::StrCat(v.vg, "/", v.lv, " is a COW snapshot of ", v.vg, "/",
                     lv->origin, "; snapshot the origin instead");
  } else {
    v.not_snapshottable_reason = absl::StrCat(
        v.vg, "/", v.lv, " is a ", lv->segtype,
        " LV; cbtd snapshots thin LVs and linear/striped/raid LVs only");
  }
  return v;
}

}  // namespace cbtd::snapshot
