// Volume discovery: what a path is (thin LV, thick LV, other dm device,
// plain block device), its size and identity, and for LVs the pool and
// device-mapper names that snapshotting and changed-block tracking need.
#ifndef CBTD_SNAPSHOT_VOLUME_H_
#define CBTD_SNAPSHOT_VOLUME_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "snapshot/device_mapper.h"
#include "snapshot/host.h"
#include "snapshot/lvm.h"

namespace cbtd::snapshot {

enum class VolumeKind {
  kThinLv,       // thin LV: thin snapshot
  kThickLv,      // linear/striped/raid LV: COW snapshot
  kOtherDm,      // a dm device lvm2 does not manage: dm-snapshot if its
                 // table is linear/striped (dm_snapshotter.h); an LV's
                 // layer, a pool, a COW snapshot: refused
  kBlockDevice,  // a plain disk or partition: no snapshot below it
  kImageFile,    // a regular file (a VM image): a reflink copy, if its
                 // filesystem makes them (agent/, not the Snapshotter)
  kEraDevice,    // a dm-era device: its origin below is snapshotted, the
                 // era device held with it (consistency_group.h)
};
std::string_view VolumeKindName(VolumeKind kind);  // "thin", "thick", ...

struct VolumeInfo {
  std::string path;  // as given (vg/lv is expanded to /dev/vg/lv)
  VolumeKind kind = VolumeKind::kBlockDevice;
  uint64_t size_bytes = 0;
  uint32_t major = 0;
  uint32_t minor = 0;
  // LV UUID for LVs, dm UUID for other dm devices, "file-DEV-INODE" for
  // image files, empty otherwise.
  std::string uuid;
  std::string dm_name;  // empty for plain block devices

  // LVs only.
  std::string vg;
  std::string lv;
  std::vector<std::string> tags;
  std::string origin;  // set if this LV is itself a snapshot

  // Thin LVs only: what changed-block tracking (thin_delta) needs.
  std::string pool_lv;
  std::optional<uint64_t> thin_id;
  std::string pool_dm_name;           // "vg-pool-tpool": takes messages
  std::string pool_metadata_dm_path;  // "/dev/mapper/vg-pool_tmeta"
  std::optional<double> pool_data_percent;
  std::optional<double> pool_metadata_percent;

  // Era devices only: the device below the era target ("/dev/mapper/NAME"),
  // whose snapshot is the era device's content (era maps 1:1).
  std::string era_origin_path;

  // Why this volume cannot be snapshotted; empty if it can.
  std::string not_snapshottable_reason;
};

// Works out what `path` is. `path` is a device path or "VG/LV".
// Errors: NOT_FOUND if it does not exist (e.g. a missing LV),
// INVALID_ARGUMENT if it is neither a block device nor a regular file. A device
// that exists but cannot be snapshotted is not an error here: see
// not_snapshottable_reason.
absl::StatusOr<VolumeInfo> DiscoverVolume(const std::string& path, Lvm& lvm,
                                          DeviceMapper& dm, Host& host);

// The device below dm-era device `era_dm_name`, as "/dev/mapper/NAME";
// empty when it is not a device-mapper device. FAILED_PRECONDITION when the
// table is not one era target.
absl::StatusOr<std::string> EraOriginPath(DeviceMapper& dm,
                                          const std::string& era_dm_name);

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_VOLUME_H_
