#include "snapshot/volume.h"

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "snapshot/naming.h"

namespace cbtd::snapshot {
namespace {

// dm UUIDs lvm2 gives LVs: "LVM-" + 32 chars VG UUID + 32 chars LV UUID,
// plus "-suffix" for the hidden layers (-tpool, -real, -cow, ...).
constexpr size_t kLvmUuidLength = 4 + 32 + 32;

bool IsThickSegtype(const std::string& s) {
  return s == "linear" || s == "striped" || absl::StartsWith(s, "raid") ||
         s == "mirror";
}

// Why a dm device lvm2 does not manage cannot get a dm-snapshot (empty if
// it can). Its table is duplicated into cbtd-NAME-real, which is safe only
// for targets that hold no state of their own: a second thin, era, cache
// or crypt table over the same devices would corrupt them.
std::string ForeignDmReason(const VolumeInfo& v, const DmInfo& d,
                            DeviceMapper& dm) {
  const std::string types = absl::StrJoin(d.target_types, ",");
  if (d.uuid.starts_with(kDmUuidPrefix)) {
    return absl::StrCat(v.path, " is ", d.name,
                        ", one of cbtd's own snapshot devices (uuid ", d.uuid,
                        "); snapshot its origin instead");
  }
  if (d.name.size() > kMaxDmOriginNameLength) {
    return absl::StrCat(v.path, ": the dm name ", d.name, " is longer than ",
                        kMaxDmOriginNameLength,
                        " characters, too long for the snapshot's helper "
                        "device names");
  }
  bool plain = !d.target_types.empty();
  for (const std::string& t : d.target_types) {
    plain &= t == "linear" || t == "striped";
  }
  if (plain) return "";
  if (d.target_types == std::vector<std::string>{"snapshot-origin"}) {
    // Already the origin of cbtd's snapshots: another one can be added.
    const DmDeviceName real = DmHelperName(DmRole::kReal, d.name, "");
    absl::StatusOr<std::optional<DmInfo>> r = dm.InfoByName(real.name);
    if (r.ok() && r->has_value() && (*r)->uuid == real.uuid) return "";
    return absl::StrCat(v.path, " is device-mapper device ", d.name,
                        ", the origin of a dm snapshot cbtd did not make; "
                        "cbtd never changes it");
  }
  return absl::StrCat(
      v.path, " is device-mapper device ", d.name, " (targets: ", types,
      ") that lvm2 does not manage; cbtd snapshots such devices (with "
      "dm-snapshot) only when their table is linear or striped, and LVM "
      "thin and thick LVs");
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
    case VolumeKind::kImageFile:
      return "file";
    case VolumeKind::kEraDevice:
      return "era";
  }
  return "unknown";
}

absl::StatusOr<std::string> EraOriginPath(DeviceMapper& dm,
                                          const std::string& era_dm_name) {
  absl::StatusOr<DmTable> table = dm.Table(era_dm_name);
  if (!table.ok()) return table.status();
  // era <metadata dev> <origin dev> <block sectors>
  const std::vector<std::string> params =
      table->size() == 1
          ? absl::StrSplit(table->front().params, ' ', absl::SkipEmpty())
          : std::vector<std::string>{};
  uint32_t major = 0, minor = 0;
  if (table->size() != 1 || table->front().type != "era" || params.size() < 2 ||
      std::sscanf(params[1].c_str(), "%u:%u", &major, &minor) != 2) {
    return absl::FailedPreconditionError(
        absl::StrCat(era_dm_name, " is not one era target over a device (",
                     FormatDmTable(*table), ")"));
  }
  absl::StatusOr<std::optional<DmInfo>> below = dm.InfoByDevice(major, minor);
  if (!below.ok()) return below.status();
  if (!below->has_value()) return std::string();
  return absl::StrCat("/dev/mapper/", (*below)->name);
}

absl::StatusOr<VolumeInfo> DiscoverVolume(const std::string& path_in, Lvm& lvm,
                                          DeviceMapper& dm, Host& host) {
  VolumeInfo v;
  v.path = path_in;
  if (!path_in.empty() && path_in[0] != '/') v.path = "/dev/" + path_in;

  absl::StatusOr<BlockDeviceId> id = host.StatBlockDevice(v.path);
  if (absl::IsInvalidArgument(id.status())) {
    absl::StatusOr<ImageFileId> file = host.StatImageFile(v.path);
    if (!file.ok()) return id.status();
    v.kind = VolumeKind::kImageFile;
    v.size_bytes = file->size_bytes;
    v.uuid = absl::StrCat("file-", file->device, "-", file->inode);
    v.not_snapshottable_reason =
        absl::StrCat(v.path,
                     " is an image file: the daemon backs it up from a "
                     "reflink copy (docs/operations.md); snapshots here are "
                     "of LVs and dm devices");
    return v;
  }
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
        "up without a snapshot while nothing writes to it (cbtd.conf: "
        "snapshot = none)");
    return v;
  }
  const DmInfo& d = **info;
  v.dm_name = d.name;
  v.uuid = d.uuid;
  v.kind = VolumeKind::kOtherDm;
  if (d.target_types == std::vector<std::string>{"era"}) {
    v.kind = VolumeKind::kEraDevice;
    absl::StatusOr<std::string> origin = EraOriginPath(dm, d.name);
    if (!origin.ok()) return origin.status();
    v.era_origin_path = *origin;
    if (v.era_origin_path.empty()) {
      v.not_snapshottable_reason = absl::StrCat(
          v.path, " is dm-era device ", d.name,
          " over a device that is not device-mapper's; cbtd snapshots the "
          "origin below an era device only when it is an LV");
    }
    return v;
  }
  if (!absl::StartsWith(d.uuid, "LVM-")) {
    v.not_snapshottable_reason = ForeignDmReason(v, d, dm);
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
