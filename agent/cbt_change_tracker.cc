#include "agent/cbt_change_tracker.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cbt/cow_store.h"
#include "cbt/era_stack.h"
#include "cbt/external_method.h"
#include "cbt/lvm_methods.h"
#include "common/fs.h"
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
      if (info.kind == snapshot::VolumeKind::kEraDevice) return "era";
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
      if (info.kind == snapshot::VolumeKind::kEraDevice) return "era";
      *why_not = absl::StrCat(
          "method era needs a dm-era device (a cbtd era stack: cbtctl "
          "era-stack create); ",
          volume.path, " is ",
          std::string(snapshot::VolumeKindName(info.kind)));
      return "hash";
    case TrackingMethod::kHash:
      return "hash";
    case TrackingMethod::kExternal:
      return "external";
  }
  return "hash";
}

// The largest changes_file read: a list of a million extents is ~40 MB.
constexpr uint64_t kMaxExternalListBytes = 64 << 20;

// method external: the list a run was handed or found in the volume's
// changes_file.
struct ExternalList {
  std::string contents;
  std::string next_generation;  // what the next list must carry
  std::string problem;          // why there is no usable list; "" if none
};

// `contents` as a list: its next_generation.
ExternalList ParseExternalList(std::string contents) {
  ExternalList out;
  out.contents = std::move(contents);
  const nlohmann::json j = nlohmann::json::parse(out.contents, nullptr,
                                                 /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("next_generation") &&
      j["next_generation"].is_string()) {
    out.next_generation = j["next_generation"].get<std::string>();
  }
  return out;
}

// The list handed in for this run, else the volume's changes_file.
ExternalList FindExternalList(const VolumeConfig& volume) {
  if (!volume.handed_changes.empty()) {
    return ParseExternalList(volume.handed_changes);
  }
  ExternalList out;
  if (volume.changes_file.empty()) {
    out.problem =
        "no list was handed in for this run (BackupNow changes) and the "
        "volume has no changes_file";
    return out;
  }
  const std::string& path = volume.changes_file;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    out.problem = absl::StrCat("cannot read ", path, ": ", strerror(errno));
    return out;
  }
  if (!S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) > kMaxExternalListBytes) {
    out.problem = absl::StrCat(path, " is not a regular file of at most ",
                               kMaxExternalListBytes >> 20, " MiB");
    return out;
  }
  absl::StatusOr<std::string> text = common::ReadFile(path);
  if (!text.ok()) {
    out.problem = std::string(text.status().message());
    return out;
  }
  return ParseExternalList(*std::move(text));
}

// Why `list` does not answer for the writes since `base`; fills `set` when
// it does.
std::string UseExternalList(const ExternalList& list,
                            const TrackingRecord& base, uint64_t size_bytes,
                            cbt::ChangedSet& set) {
  if (!list.problem.empty()) return list.problem;
  const nlohmann::json blob = nlohmann::json::parse(base.state_blob, nullptr,
                                                    /*allow_exceptions=*/false);
  std::string expected;
  if (blob.is_object() && blob.contains("external_generation") &&
      blob["external_generation"].is_string()) {
    expected = blob["external_generation"].get<std::string>();
  }
  if (expected.empty()) {
    return "the last run's list named no next_generation, so no list can "
           "be trusted for the writes since it";
  }
  set = cbt::ComputeExternal(list.contents, expected, size_bytes);
  return set.lost ? set.lost_reason : "";
}

// What a run of an era volume found: the era its next run starts from,
// and the stack's generation (cbt/era_stack.h).
struct EraAnchor {
  uint64_t since_era = 0;
  std::string generation;
};

// `tracks` is the method the new snapshot can anchor next time, even when
// this run fell back to hash.
std::string StateBlob(const snapshot::VolumeInfo& info,
                      const std::string& tracks,
                      const std::string& external_generation,
                      const std::optional<EraAnchor>& era) {
  nlohmann::json blob{
      {"uuid", info.uuid}, {"size", info.size_bytes}, {"tracks", tracks}};
  if (!external_generation.empty()) {
    blob["external_generation"] = external_generation;
  }
  if (era.has_value()) {
    blob["since_era"] = era->since_era;
    blob["era_generation"] = era->generation;
  }
  return blob.dump();
}

// The era anchor the last run stored; nullopt when it stored none.
std::optional<EraAnchor> StoredEra(const TrackingRecord& base) {
  const nlohmann::json blob = nlohmann::json::parse(base.state_blob, nullptr,
                                                    /*allow_exceptions=*/false);
  if (!blob.is_object() || !blob.contains("since_era") ||
      !blob["since_era"].is_number_unsigned() ||
      !blob.contains("era_generation") || !blob["era_generation"].is_string()) {
    return std::nullopt;
  }
  return EraAnchor{blob["since_era"].get<uint64_t>(),
                   blob["era_generation"].get<std::string>()};
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
  if (blob.contains(kRolledBackToKey) && blob[kRolledBackToKey].is_string()) {
    return absl::StrCat(info.path, " was rolled back in place to version ",
                        blob[kRolledBackToKey].get<std::string>(),
                        "; every chunk is compared once");
  }
  if (blob["tracks"] != method) {
    return absl::StrCat("the method changed from ",
                        blob["tracks"].get<std::string>(), " to ", method);
  }
  if (method == "era") return "";  // the stack's generation says it all
  if (method != "hash" && method != "external" && base.base_snapshot.empty()) {
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

absl::StatusOr<std::optional<cbt::EraResult>> CbtChangeTracker::Era(
    const snapshot::VolumeInfo& info,
    const std::optional<TrackingRecord>& base) {
  const cbt::EraStackRegistry registry(era_registry_dir_);
  absl::StatusOr<std::optional<cbt::EraStackSpec>> spec =
      registry.Find(info.dm_name);
  if (!spec.ok()) return spec.status();
  if (!spec->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        info.path, " is dm-era device ", info.dm_name,
        " but not a recorded cbtd era stack (no record in ", era_registry_dir_,
        "); create it with `cbtctl era-stack create`, or set method = hash"));
  }
  cbt::EraRequest req;
  req.era_dm_name = info.dm_name;
  req.metadata_path = (*spec)->metadata_path;
  req.lock_path = absl::StrCat(lock_dir_, "/era-", info.dm_name, ".lock");
  // Without a stored anchor the whole set is not used (a full or a
  // fallback), but the checkpoint still anchors the next run.
  const std::optional<EraAnchor> stored =
      base.has_value() ? StoredEra(*base) : std::nullopt;
  if (stored.has_value()) {
    req.since_era = stored->since_era;
    req.expected_generation = stored->generation;
  }
  absl::StatusOr<cbt::EraResult> r = cbt::ComputeEra(runner_, cbt_dm_, req);
  if (!r.ok()) return r.status();
  if (!stored.has_value() && !r->set.lost) {
    r->set = cbt::ChangedSet::Lost(cbt::Method::kEra, info.size_bytes,
                                   "the last run stored no era to count from");
  }
  return std::optional<cbt::EraResult>(*std::move(r));
}

absl::StatusOr<ChangedSet> CbtChangeTracker::ComputeChanges(
    const VolumeConfig& volume, const std::optional<TrackingRecord>& base,
    const SnapshotRef& snapshot, bool full) {
  absl::StatusOr<snapshot::VolumeInfo> info =
      snapshot::DiscoverVolume(volume.path, lvm_, dm_, host_);
  if (!info.ok()) return info.status();
  absl::StatusOr<ChangedSet> out = Track(volume, *info, base, snapshot, full);
  if (!out.ok()) return out;
  const bool reads_all =
      out->full ||
      (out->method == "hash" && out->extents.Contains({0, info->size_bytes}));
  if (reads_all) SkipUnallocated(*info, snapshot, *out);
  return out;
}

absl::StatusOr<cbt::ExtentSet> CbtChangeTracker::Unallocated(
    const snapshot::VolumeInfo& info, const SnapshotRef& snapshot) {
  cbt::ExtentSet unallocated;
  unallocated.Add(0, info.size_bytes);
  if (info.kind == snapshot::VolumeKind::kThinLv) {
    absl::StatusOr<cbt::ExtentSet> mapped = cbt::ThinMappedOfLv(
        runner_, cbt_dm_, snapshot.snapshot_name, lock_dir_);
    if (!mapped.ok()) return mapped.status();
    unallocated.Remove(*mapped);
  } else if (info.kind == snapshot::VolumeKind::kImageFile) {
    auto data = common::FileDataRanges(snapshot.device_path);
    if (!data.ok()) return data.status();
    for (const common::ByteRange& r : *data) {
      unallocated.Remove({r.offset, r.length});
    }
  } else {
    return cbt::ExtentSet();  // a block device: no map to read
  }
  return unallocated;
}

void CbtChangeTracker::SkipUnallocated(const snapshot::VolumeInfo& info,
                                       const SnapshotRef& snapshot,
                                       ChangedSet& out) {
  absl::StatusOr<cbt::ExtentSet> unallocated = Unallocated(info, snapshot);
  if (!unallocated.ok()) {
    std::cerr << "cbtd: " << info.path << ": reading all of it: cannot tell "
              << "which blocks are allocated ("
              << unallocated.status().message() << ")\n";
    return;
  }
  out.extents.Remove(*unallocated);
  out.zeroed.Add(*unallocated);
}

absl::StatusOr<ChangedSet> CbtChangeTracker::Track(
    const VolumeConfig& volume, const snapshot::VolumeInfo& info,
    const std::optional<TrackingRecord>& base, const SnapshotRef& snapshot,
    bool full) {
  ChangedSet out;
  out.volume_bytes = info.size_bytes;
  out.method = ResolveMethod(volume, info, &out.fallback_reason);
  ExternalList list;
  if (out.method == "external") list = FindExternalList(volume);
  absl::StatusOr<std::optional<cbt::EraResult>> era =
      out.method == "era" ? Era(info, base)
                          : std::optional<cbt::EraResult>(std::nullopt);
  if (!era.ok()) return era.status();
  std::optional<EraAnchor> anchor;
  if (era->has_value()) {
    anchor = EraAnchor{(*era)->next_since_era, (*era)->generation};
  }
  out.next_state_blob =
      StateBlob(info, out.method, list.next_generation, anchor);
  // Neither hash, an external list nor era needs a base snapshot.
  out.keep_snapshot =
      out.method != "hash" && out.method != "external" && out.method != "era";
  out.extents.Add(0, info.size_bytes);
  if (full || !base.has_value() || base->base_version.empty()) {
    out.full = true;  // nothing to compare with: every chunk is new
    return out;
  }
  // From here an incremental against base->base_version; the whole volume
  // (as set above) whenever the method cannot answer.
  const std::string problem = ChainProblem(*base, out.method, info);
  if (!problem.empty()) {
    if (out.fallback_reason.empty()) out.fallback_reason = problem;
    out.method = "hash";
    return out;
  }
  if (out.method == "external") {
    cbt::ChangedSet set;
    const std::string why = UseExternalList(list, *base, info.size_bytes, set);
    if (!why.empty()) {
      out.fallback_reason = absl::StrCat("external list not used: ", why);
      out.method = "hash";
      return out;
    }
    out.extents = set.changed;
    return out;
  }
  absl::StatusOr<cbt::ChangedSet> set;
  if (out.method == "era") set = std::move((*era)->set);
  const std::string lv = absl::StrCat(info.vg, "/", info.lv);
  if (out.method == "era") {
    // computed above, right after the snapshot
  } else if (out.method == "thin-delta") {
    set = cbt::ThinDeltaBetweenLvs(runner_, cbt_dm_, lv, base->base_snapshot,
                                   snapshot.snapshot_name, lock_dir_);
  } else if (out.method == "cow-table" &&
             info.kind == snapshot::VolumeKind::kOtherDm) {
    set = DmCowTable(info, base->base_snapshot);
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
