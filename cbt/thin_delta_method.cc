#include "cbt/thin_delta_method.h"

#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/thin_delta_xml.h"

namespace cbtd::cbt {
namespace {

const char* ReserveMessage(bool era) {
  return era ? "take_metadata_snap" : "reserve_metadata_snap";
}
const char* ReleaseMessage(bool era) {
  return era ? "drop_metadata_snap" : "release_metadata_snap";
}

// Both statuses carry the held metadata root as param 3 ("-": none):
//   thin-pool: trans meta/total data/total HELD ...
//   era:       md_block_sectors meta/total era HELD
constexpr size_t kHeldRootParam = 3;

}  // namespace

absl::StatusOr<std::unique_ptr<ScopedMetadataSnap>> ScopedMetadataSnap::Reserve(
    DeviceMapper& dm, std::string dm_name, bool era) {
  absl::StatusOr<std::string> out = dm.Message(dm_name, 0, ReserveMessage(era));
  if (!out.ok()) return out.status();
  return std::unique_ptr<ScopedMetadataSnap>(
      new ScopedMetadataSnap(dm, std::move(dm_name), era));
}

ScopedMetadataSnap::~ScopedMetadataSnap() {
  if (!held_) return;
  absl::Status st = Release();
  if (!st.ok()) {
    // Nothing to return to; the next run detects and releases it.
    std::cerr << "cbtd: could not release metadata snapshot of " << dm_name_
              << ": " << st << "\n";
  }
}

absl::Status ScopedMetadataSnap::Release() {
  if (!held_) return absl::OkStatus();
  held_ = false;
  return dm_.Message(dm_name_, 0, ReleaseMessage(era_)).status();
}

absl::StatusOr<bool> ReleaseStaleMetadataSnap(DeviceMapper& dm,
                                              const std::string& dm_name,
                                              bool era) {
  absl::StatusOr<DmTable> status = dm.Status(dm_name);
  if (!status.ok()) return status.status();
  absl::StatusOr<DmTarget> target =
      SingleTarget(*status, era ? "era" : "thin-pool", dm_name);
  if (!target.ok()) return target.status();
  absl::StatusOr<std::string> held =
      ParamField(*target, kHeldRootParam, dm_name);
  if (!held.ok()) return held.status();
  if (*held == "-") return false;
  absl::StatusOr<std::string> out = dm.Message(dm_name, 0, ReleaseMessage(era));
  if (!out.ok()) return out.status();
  std::cerr << "cbtd: released a stale metadata snapshot (root " << *held
            << ") of " << dm_name << " left by an interrupted run\n";
  return true;
}

namespace {

// Runs `argv` (a tool reading the pool's metadata snapshot) under the
// pool's lock with a metadata snapshot reserved, releasing it on every
// path; its standard output.
absl::StatusOr<std::string> RunOnMetadataSnap(
    CommandRunner& runner, DeviceMapper& dm, const std::string& pool_dm_name,
    const std::string& lock_path, const std::vector<std::string>& argv) {
  absl::StatusOr<std::unique_ptr<ScopedLock>> lock = LockFile(lock_path);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<bool> stale =
      ReleaseStaleMetadataSnap(dm, pool_dm_name, /*era=*/false);
  if (!stale.ok()) return stale.status();
  absl::StatusOr<std::unique_ptr<ScopedMetadataSnap>> snap =
      ScopedMetadataSnap::Reserve(dm, pool_dm_name, /*era=*/false);
  if (!snap.ok()) return snap.status();
  absl::StatusOr<std::string> out = runner.Run(argv);
  absl::Status released = (*snap)->Release();
  if (!out.ok()) return out.status();
  if (!released.ok()) return released;
  return out;
}

}  // namespace

absl::StatusOr<ChangedSet> ComputeThinDelta(CommandRunner& runner,
                                            DeviceMapper& dm,
                                            const ThinDeltaRequest& req) {
  absl::StatusOr<std::string> xml =
      RunOnMetadataSnap(runner, dm, req.pool_dm_name, req.lock_path,
                        {"thin_delta", "--metadata-snap", "--snap1",
                         absl::StrCat(req.base_thin_id), "--snap2",
                         absl::StrCat(req.new_thin_id), req.tmeta_path});
  if (!xml.ok()) return xml.status();
  absl::StatusOr<ThinDelta> delta = ParseThinDeltaXml(*xml);
  if (!delta.ok()) return delta.status();
  if (delta->left_thin_id != req.base_thin_id ||
      delta->right_thin_id != req.new_thin_id) {
    return absl::InternalError(
        absl::StrCat("thin_delta compared thin ids ", delta->left_thin_id,
                     " and ", delta->right_thin_id, ", asked for ",
                     req.base_thin_id, " and ", req.new_thin_id));
  }
  ChangedSet set;
  set.method = Method::kThinDelta;
  set.generation = absl::StrCat("thin:", req.pool_dm_name, ":",
                                req.base_thin_id, "->", req.new_thin_id);
  set.volume_size_bytes = req.volume_size_bytes;
  set.granularity_bytes = delta->data_block_sectors * 512;
  const ExtentSet volume{{0, req.volume_size_bytes}};
  set.changed = delta->changed_bytes.Intersection(volume);
  set.zeroed = delta->zeroed_bytes.Intersection(volume);
  return set;
}

absl::StatusOr<ExtentSet> ComputeThinMapped(CommandRunner& runner,
                                            DeviceMapper& dm,
                                            const ThinMapRequest& req) {
  absl::StatusOr<std::string> xml =
      RunOnMetadataSnap(runner, dm, req.pool_dm_name, req.lock_path,
                        {"thin_dump", "--metadata-snap", "--dev-id",
                         absl::StrCat(req.thin_id), req.tmeta_path});
  if (!xml.ok()) return xml.status();
  absl::StatusOr<ThinMapping> map = ParseThinDumpXml(*xml, req.thin_id);
  if (!map.ok()) return map.status();
  const ExtentSet volume{{0, req.volume_size_bytes}};
  return map->mapped_bytes.Intersection(volume);
}

}  // namespace cbtd::cbt
