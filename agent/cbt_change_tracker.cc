#include "agent/cbt_change_tracker.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "cbt/cow_store.h"
#include "cbt/lvm_methods.h"
#include "nlohmann/json.hpp"
#include "snapshot/naming.h"
#include "snapshot/volume.h"

namespace cbtd::agent {
namespace {

// The method a volume of `kind` is tracked with, and why not the
// configured one (empty when it is).
std::string ResolveMethod(const VolumeConfig& volume,
                          const snapshot::VolumeInfo& info,
                          std::string* why_not) {
  const bool thin = info.kind == snapshot::VolumeKind::kThinLv;
  // A dm volume's snapshot is a dm-snapshot too (snapshot/dm_snapshotter.h):
  // its exception store answers exactly like a thick LV's.
  const bool thick = info.kind == snapshot::VolumeKind::kThickLv ||
                     info.kind == snapshot::VolumeKind::kOtherDm;
  switch (volume.method) {
    case TrackingMethod::kAuto:
      return thin ? "thin-delta" : thick ? "cow-table" : "hash";
    case TrackingMethod::kThinDelta:
      if (thin) return "thin-delta";
      *why_not = absl::StrCat("method thin-delta needs a thin LV; ",
                              volume.path, " is ",
                              std::string(snapshot::VolumeKindName(info.kind)));
      return "hash";
    case TrackingMethod::kCowTable:
      if (thick) return "cow-table";
      *why_not = absl::StrCat(
          "method cow-table needs a thick LV or a dm "
          "volume; ",
          volume.path, " is ",
          std::string(snapshot::VolumeKindName(info.kind)));
      return "hash";
    case TrackingMethod::kEra:
      *why_not =
          "method era is not driven by cbtd yet (use `cbtctl changes "
          "--method era`); comparing hashes";
      return "hash";
    case TrackingMethod::kHash:
      return "hash";
  }
  return "hash";
}

// `tracks` is the method the new snapshot can anchor next time, even when
// this run fell back to hash.
std::string StateBlob(const snapshot::VolumeInfo& info,
                      const std::string& tracks) {
  return nlohmann::json{
      {"uuid", info.uuid}, {"size", info.size_bytes}, {"tracks", tracks}}
      .dump();
}

// Why the committed record cannot anchor an incremental of `info` by
// `method`; empty when it can.
std::string ChainProblem(const TrackingRecord& base, const std::string& method,
                         const snapshot::VolumeInfo& info) {
  const nlohmann::json blob = nlohmann::json::parse(base.state_blob, nullptr,
                                                    /*allow_exceptions=*/false);
  if (!blob.is_object() || !blob.contains("uuid") || !blob.contains("tracks") ||
      !blob["tracks"].is_string()) {
    return "the tracking state has no volume identity";
  }
  if (blob["tracks"] != method) {
    return absl::StrCat("the method changed from ",
                        blob["tracks"].get<std::string>(), " to ", method);
  }
  if (method != "hash" && base.base_snapshot.empty()) {
    return "no base snapshot was kept";
  }
  if (blob["uuid"] != info.uuid) {
    return absl::StrCat(info.path, " was re-created (its UUID changed)");
  }
  return "";
}

// cow-table for a dm volume: the exception store of the base snapshot
// ("dm/cbtd-<origin>-<ts>") is its cbtd-<origin>-cow-<ts> device.
absl::StatusOr<cbt::ChangedSet> DmCowTable(const snapshot::VolumeInfo& info,
                                           const std::string& base) {
  const std::string prefix = "dm/";
  std::optional<snapshot::ParsedSnapshotName> parsed;
  if (base.starts_with(prefix)) {
    parsed = snapshot::ParseDmSnapshotName(base.substr(prefix.size()));
  }
  if (!parsed || parsed->origin != info.dm_name) {
    return cbt::ChangedSet::Lost(
        cbt::Method::kCowTable, info.size_bytes,
        absl::StrCat(base, " is not a cbtd snapshot of ", info.dm_name));
  }
  const std::string cow = absl::StrCat(
      "/dev/mapper/", snapshot::DmHelperName(snapshot::DmRole::kCow,
                                             parsed->origin, parsed->timestamp)
                          .name);
  struct stat st;
  if (::stat(cow.c_str(), &st) != 0) {
    return cbt::ChangedSet::Lost(
        cbt::Method::kCowTable, info.size_bytes,
        absl::StrCat("base snapshot ", base, " is missing (no ", cow, ")"));
  }
  return cbt::ComputeCowTable(cow, info.size_bytes);
}

}  // namespace

absl::StatusOr<ChangedSet> CbtChangeTracker::ComputeChanges(
    const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
    const SnapshotRef& snapshot, bool full) {
  absl::StatusOr<snapshot::VolumeInfo> info =
      snapshot::DiscoverVolume(volume.path, lvm_, dm_, host_);
  if (!info.ok()) return info.status();
  ChangedSet out;
  out.volume_bytes = info->size_bytes;
  out.method = ResolveMethod(volume, *info, &out.fallback_reason);
  out.next_state_blob = StateBlob(*info, out.method);
  out.keep_snapshot = out.method != "hash";  // hash needs no base snapshot
  out.extents.Add(0, info->size_bytes);
  if (full || !base.has_value() || base->base_version.empty()) {
    out.full = true;  // nothing to compare with: every chunk is new
    return out;
  }
  // From here an incremental against base->base_version; the whole volume
  // (as set above) whenever the method cannot answer.
  const std::string problem = ChainProblem(*base, out.method, *info);
  if (!problem.empty()) {
    if (out.fallback_reason.empty()) out.fallback_reason = problem;
    out.method = "hash";
    return out;
  }
  const std::string lv = absl::StrCat(info->vg, "/", info->lv);
  absl::StatusOr<cbt::ChangedSet> set;
  if (out.method == "thin-delta") {
    set = cbt::ThinDeltaBetweenLvs(runner_, cbt_dm_, lv, base->base_snapshot,
                                   snapshot.snapshot_name, lock_dir_);
  } else if (out.method == "cow-table" &&
             info->kind == snapshot::VolumeKind::kOtherDm) {
    set = DmCowTable(*info, base->base_snapshot);
  } else if (out.method == "cow-table") {
    set = cbt::CowTableOfLv(runner_, lv, base->base_snapshot);
  } else {
    return out;  // hash: read everything, send what differs from the base
  }
  if (!set.ok()) return set.status();
  if (set->lost) {
    out.fallback_reason =
        absl::StrCat(out.method, " tracking lost: ", set->lost_reason);
    out.method = "hash";
    return out;
  }
  out.extents = set->changed;
  out.zeroed = set->zeroed;
  return out;
}

}  // namespace cbtd::agent
