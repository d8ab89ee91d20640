#include "cbt/lvm_methods.h"

#include "absl/strings/str_cat.h"
#include "cbt/cow_store.h"
#include "cbt/lvm_query.h"
#include "cbt/thin_delta_method.h"

namespace cbtd::cbt {
namespace {

// The thin pool's device-mapper names and its lock, for thin LV `lv`.
std::string PoolDmName(const LvInfo& lv) {
  return LvmDmName(lv.vg, lv.pool_lv, "tpool");
}
std::string TmetaPath(const LvInfo& lv) {
  return absl::StrCat("/dev/mapper/", LvmDmName(lv.vg, lv.pool_lv + "_tmeta"));
}
std::string PoolLockPath(const std::string& lock_dir,
                         const std::string& pool_dm_name) {
  return absl::StrCat(lock_dir, "/thin-", pool_dm_name, ".lock");
}

}  // namespace

absl::StatusOr<ChangedSet> ThinDeltaBetweenLvs(CommandRunner& runner,
                                               DeviceMapper& dm,
                                               const std::string& volume,
                                               const std::string& base,
                                               const std::string& next,
                                               const std::string& lock_dir) {
  absl::StatusOr<LvInfo> vol = QueryLv(runner, volume);
  if (!vol.ok()) return vol.status();
  absl::StatusOr<LvInfo> b = QueryLv(runner, base);
  if (absl::IsNotFound(b.status())) {
    return ChangedSet::Lost(
        Method::kThinDelta, vol->size_bytes,
        absl::StrCat("base snapshot ", base, " is missing"));
  }
  if (!b.ok()) return b.status();
  absl::StatusOr<LvInfo> n = QueryLv(runner, next);
  if (!n.ok()) return n.status();
  if (!b->has_thin_id || !n->has_thin_id || b->pool_lv != n->pool_lv ||
      b->vg != n->vg || b->size_bytes != n->size_bytes) {
    return ChangedSet::Lost(
        Method::kThinDelta, n->size_bytes,
        absl::StrCat("base ", base, " and new ", next,
                     " are not equally sized thin volumes of one pool"));
  }
  ThinDeltaRequest req;
  req.pool_dm_name = PoolDmName(*n);
  req.tmeta_path = TmetaPath(*n);
  req.base_thin_id = b->thin_id;
  req.new_thin_id = n->thin_id;
  req.volume_size_bytes = n->size_bytes;
  req.lock_path = PoolLockPath(lock_dir, req.pool_dm_name);
  return ComputeThinDelta(runner, dm, req);
}

absl::StatusOr<ExtentSet> ThinMappedOfLv(CommandRunner& runner,
                                         DeviceMapper& dm,
                                         const std::string& lv,
                                         const std::string& lock_dir) {
  absl::StatusOr<LvInfo> info = QueryLv(runner, lv);
  if (!info.ok()) return info.status();
  if (!info->has_thin_id || info->pool_lv.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(lv, " is not a thin volume"));
  }
  ThinMapRequest req;
  req.pool_dm_name = PoolDmName(*info);
  req.tmeta_path = TmetaPath(*info);
  req.thin_id = info->thin_id;
  req.volume_size_bytes = info->size_bytes;
  req.lock_path = PoolLockPath(lock_dir, req.pool_dm_name);
  return ComputeThinMapped(runner, dm, req);
}

absl::StatusOr<ChangedSet> CowTableOfLv(CommandRunner& runner,
                                        const std::string& volume,
                                        const std::string& base) {
  absl::StatusOr<LvInfo> vol = QueryLv(runner, volume);
  if (!vol.ok()) return vol.status();
  absl::StatusOr<LvInfo> b = QueryLv(runner, base);
  if (absl::IsNotFound(b.status())) {
    return ChangedSet::Lost(
        Method::kCowTable, vol->size_bytes,
        absl::StrCat("base snapshot ", base, " is missing"));
  }
  if (!b.ok()) return b.status();
  if (b->origin != vol->lv || b->vg != vol->vg) {
    return ChangedSet::Lost(
        Method::kCowTable, vol->size_bytes,
        absl::StrCat(base, " is not a snapshot of ", volume));
  }
  return ComputeCowTable(
      absl::StrCat("/dev/mapper/", LvmDmName(b->vg, b->lv, "cow")),
      vol->size_bytes);
}

}  // namespace cbtd::cbt
