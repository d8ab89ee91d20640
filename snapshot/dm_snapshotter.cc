#include "snapshot/dm_snapshotter.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "snapshot/naming.h"

namespace cbtd::snapshot {
namespace {

std::string Dev(const DmInfo& d) { return absl::StrCat(d.major, ":", d.minor); }

std::string Mib(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

bool IsPlainTable(const DmTable& t) {
  if (t.empty()) return false;
  for (const DmTarget& target : t) {
    if (target.type != "linear" && target.type != "striped") return false;
  }
  return true;
}

DmTable OriginTable(uint64_t sectors, const DmInfo& real) {
  return {DmTarget{0, sectors, "snapshot-origin", Dev(real)}};
}

// The device `d` if it exists and is the agent's by name and uuid; nullopt
// if it does not exist; FAILED_PRECONDITION if it exists but is not ours.
absl::StatusOr<std::optional<DmInfo>> Ours(DeviceMapper& dm,
                                           const DmDeviceName& d) {
  absl::StatusOr<std::optional<DmInfo>> info = dm.InfoByName(d.name);
  if (!info.ok() || !info->has_value()) return info;
  if ((*info)->uuid != d.uuid) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device-mapper device ", d.name, " exists but is not cbtd's (uuid '",
        (*info)->uuid, "', expected ", d.uuid,
        "); cbtd never changes devices it did not create"));
  }
  return info;
}

// Fill of a "snapshot" target from its status: "<used>/<total> <meta>".

}  // namespace

absl::StatusOr<BlockDeviceId> DmSnapshotter::Check(const VolumeInfo& volume,
                                                   const std::string& cow_store,
                                                   uint64_t cow_bytes) {
  if (volume.kind != VolumeKind::kOtherDm ||
      !volume.not_snapshottable_reason.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot snapshot ", volume.path, ": ",
                     volume.not_snapshottable_reason));
  }
  const std::string what = absl::StrCat(
      volume.path, " is device-mapper device ", volume.dm_name,
      ", which lvm2 does not manage; cbtd snapshots it with dm-snapshot, "
      "whose copy-on-write data needs a COW store: a spare block device of "
      "at least ",
      Mib(cow_bytes), " whose contents may be overwritten");
  if (cow_store.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot snapshot ", what,
                     ". Configure one for this volume (cbtctl snapshot create "
                     "--cow-device DEV; SnapshotPolicy::dm_cow_device_for)"));
  }
  absl::StatusOr<BlockDeviceId> store = host_.StatBlockDevice(cow_store);
  if (!store.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot snapshot ", volume.path, ": its COW store ",
                     cow_store, " is unusable: ", store.status().message()));
  }
  if (store->major == volume.major && store->minor == volume.minor) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot snapshot ", volume.path, ": the COW store ",
                     cow_store, " is the volume itself"));
  }
  if (store->size_bytes < cow_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot snapshot ", volume.path, ": its COW store ", cow_store, " is ",
        Mib(store->size_bytes), ", the snapshot needs ", Mib(cow_bytes),
        " (--cow-size / --cow-percent of the origin). Give a bigger store or "
        "a smaller COW size"));
  }
  return store;
}

absl::Status DmSnapshotter::Prepare(const VolumeInfo& volume,
                                    const std::string& cow_store,
                                    const std::string& timestamp) {
  const std::string& origin = volume.dm_name;
  const DmDeviceName real = DmHelperName(DmRole::kReal, origin, timestamp);
  const DmDeviceName cow = DmHelperName(DmRole::kCow, origin, timestamp);
  const DmDeviceName snap = DmHelperName(DmRole::kSnapshot, origin, timestamp);
  for (const std::string& name : {snap.name, cow.name}) {
    absl::StatusOr<std::optional<DmInfo>> info = dm_.InfoByName(name);
    if (!info.ok()) return info.status();
    if (info->has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device-mapper device ", name,
          " exists already (a snapshot taken in the same second?); retry"));
    }
  }
  absl::StatusOr<DmTable> table = dm_.Table(origin);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::optional<DmInfo>> have_real = Ours(dm_, real);
  if (!have_real.ok()) return have_real.status();
  if (have_real->has_value()) {
    // Another snapshot of this origin exists; it must be set up as ours.
    if (*table != OriginTable(DmTableSectors(*table), **have_real)) {
      return absl::FailedPreconditionError(absl::StrCat(
          real.name, " exists but ", origin,
          "'s table is not snapshot-origin "
          "over it (",
          FormatDmTable(*table), "); run `cbtctl snapshot cleanup` first"));
    }
  } else if (!IsPlainTable(*table)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot snapshot ", volume.path, ": its table is not linear/striped (",
        FormatDmTable(*table), ")"));
  }
  absl::StatusOr<BlockDeviceId> store = host_.StatBlockDevice(cow_store);
  if (!store.ok()) return store.status();
  // Exclusive open: fails, writing nothing, if the store is in use.
  if (absl::Status st = host_.ZeroStart(cow_store, kZeroBytes); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("COW store for ", volume.path,
                                                ": ", st.message()));
  }
  // From here on, anything created is undone on error.
  absl::Status st;
  if (!have_real->has_value()) {
    st = dm_.Create(real.name, real.uuid, *table, /*read_only=*/false);
    if (!st.ok()) return st;
  }
  st = dm_.Create(
      cow.name, cow.uuid,
      {DmTarget{0, store->size_bytes / 512, "linear",
                absl::StrCat(store->major, ":", store->minor, " 0")}},
      /*read_only=*/false);
  if (!st.ok()) {
    absl::Status undo = Cleanup(origin, timestamp);
    if (!undo.ok()) {
      return absl::Status(
          st.code(), absl::StrCat(st.message(), "; undoing: ", undo.message()));
    }
  }
  return st;
}

absl::Status DmSnapshotter::TakeSuspended(const VolumeInfo& volume,
                                          const std::string& timestamp) {
  const std::string& origin = volume.dm_name;
  const DmDeviceName real = DmHelperName(DmRole::kReal, origin, timestamp);
  const DmDeviceName cow = DmHelperName(DmRole::kCow, origin, timestamp);
  const DmDeviceName snap = DmHelperName(DmRole::kSnapshot, origin, timestamp);
  absl::StatusOr<std::optional<DmInfo>> real_info = Ours(dm_, real);
  if (!real_info.ok()) return real_info.status();
  absl::StatusOr<std::optional<DmInfo>> cow_info = Ours(dm_, cow);
  if (!cow_info.ok()) return cow_info.status();
  if (!real_info->has_value() || !cow_info->has_value()) {
    return absl::InternalError(absl::StrCat("snapshot ", snap.name,
                                            " was not prepared: ", real.name,
                                            " or ", cow.name, " is missing"));
  }
  absl::StatusOr<DmTable> real_table = dm_.Table(real.name);
  if (!real_table.ok()) return real_table.status();
  const uint64_t sectors = DmTableSectors(*real_table);
  absl::Status st =
      dm_.Create(snap.name, snap.uuid,
                 {DmTarget{0, sectors, "snapshot",
                           absl::StrCat(Dev(**real_info), " ", Dev(**cow_info),
                                        " P ", kChunkSectors)}},
                 /*read_only=*/true);
  if (!st.ok()) return st;
  const DmTable want = OriginTable(sectors, **real_info);
  absl::StatusOr<DmTable> live = dm_.Table(origin);
  if (!live.ok()) return live.status();
  if (*live == want) return absl::OkStatus();  // NAME has snapshots already
  return dm_.Load(origin, want);
}

absl::StatusOr<std::vector<SnapshotInfo>> DmSnapshotter::List() {
  absl::StatusOr<std::vector<DmInfo>> all = dm_.List();
  if (!all.ok()) return all.status();
  struct Parts {
    const DmInfo* snap = nullptr;
    const DmInfo* cow = nullptr;
  };
  std::map<std::pair<std::string, std::string>, Parts> by_snapshot;
  for (const DmInfo& d : *all) {
    std::optional<ParsedDmDevice> p = ParseDmDevice(d.name, d.uuid);
    if (!p.has_value() || p->role == DmRole::kReal) continue;
    Parts& parts = by_snapshot[{p->timestamp, p->origin}];
    (p->role == DmRole::kSnapshot ? parts.snap : parts.cow) = &d;
  }
  std::vector<SnapshotInfo> out;
  for (const auto& [key, parts] : by_snapshot) {
    const auto& [timestamp, origin] = key;
    SnapshotInfo s;
    s.name = DmHelperName(DmRole::kSnapshot, origin, timestamp).name;
    s.origin = origin;
    s.timestamp = timestamp;
    s.kind = VolumeKind::kOtherDm;
    s.device_path = "/dev/mapper/" + s.name;
    if (parts.cow != nullptr) s.cow_dm_path = "/dev/mapper/" + parts.cow->name;
    s.invalid = true;  // unless the status says otherwise
    if (parts.snap != nullptr) {
      s.uuid = parts.snap->uuid;
      s.active = !parts.snap->suspended;
      absl::StatusOr<DmTable> status = dm_.Status(s.name);
      if (absl::IsNotFound(status.status())) continue;  // removed meanwhile
      if (!status.ok()) return status.status();
      if (status->size() == 1 && (*status)[0].type == "snapshot") {
        s.size_bytes = (*status)[0].length_sectors * 512;
        s.cow_fill_percent = SnapshotFillPercent((*status)[0].params);
        // "Invalid" (overflowed or failed), "Overflow", "Merge failed".
        s.invalid = !s.cow_fill_percent.has_value();
      }
    }
    out.push_back(std::move(s));
  }
  return out;  // the map's order: timestamp, then origin
}

absl::StatusOr<SnapshotInfo> DmSnapshotter::Get(const std::string& name) {
  std::optional<ParsedSnapshotName> parsed = ParseDmSnapshotName(name);
  absl::StatusOr<std::optional<DmInfo>> info = dm_.InfoByName(name);
  if (!info.ok()) return info.status();
  if (info->has_value() &&
      (!parsed.has_value() ||
       DmHelperName(DmRole::kSnapshot, parsed->origin, parsed->timestamp)
               .uuid != (*info)->uuid)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device-mapper device ", name,
        " is not a cbtd snapshot (its uuid lacks the CBTD- mark or does "
        "not match its name); cbtd never changes devices it did not create"));
  }
  if (parsed.has_value()) {
    absl::StatusOr<std::vector<SnapshotInfo>> all = List();
    if (!all.ok()) return all.status();
    for (SnapshotInfo& s : *all) {
      if (s.name == name) return std::move(s);
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no snapshot dm/", name, " (see `dmsetup ls`)"));
}

absl::Status DmSnapshotter::Remove(const std::string& name) {
  absl::StatusOr<SnapshotInfo> s = Get(name);
  if (!s.ok()) return s.status();
  return Cleanup(s->origin, s->timestamp);
}

absl::Status DmSnapshotter::Cleanup(const std::string& origin,
                                    const std::string& timestamp) {
  // The snapshot holds the -cow open, so it goes first; stop at a failure
  // (removing the rest would fail as busy anyway).
  for (DmRole role : {DmRole::kSnapshot, DmRole::kCow}) {
    const DmDeviceName d = DmHelperName(role, origin, timestamp);
    absl::StatusOr<std::optional<DmInfo>> info = Ours(dm_, d);
    if (!info.ok()) return info.status();
    if (!info->has_value()) continue;
    if (absl::Status st = dm_.Remove(d.name); !st.ok()) return st;
  }
  return ReleaseOrigin(origin);
}

absl::Status DmSnapshotter::ReleaseOrigin(const std::string& origin) {
  absl::StatusOr<std::vector<DmInfo>> all = dm_.List();
  if (!all.ok()) return all.status();
  for (const DmInfo& d : *all) {
    std::optional<ParsedDmDevice> p = ParseDmDevice(d.name, d.uuid);
    if (p.has_value() && p->origin == origin && p->role != DmRole::kReal) {
      return absl::OkStatus();  // another snapshot still uses -real
    }
  }
  const DmDeviceName real = DmHelperName(DmRole::kReal, origin, "");
  absl::StatusOr<std::optional<DmInfo>> real_info = Ours(dm_, real);
  if (!real_info.ok()) return real_info.status();
  if (!real_info->has_value()) return absl::OkStatus();
  absl::StatusOr<DmTable> table = dm_.Table(real.name);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::optional<DmInfo>> origin_info = dm_.InfoByName(origin);
  if (!origin_info.ok()) return origin_info.status();
  if (origin_info->has_value()) {
    absl::StatusOr<DmTable> live = dm_.Table(origin);
    if (!live.ok()) return live.status();
    // Only the two tables cbtd put there; reloading T over T also drops an
    // inactive snapshot-origin table left by an interrupted create.
    if (*live != OriginTable(DmTableSectors(*table), **real_info) &&
        *live != *table) {
      return absl::FailedPreconditionError(absl::StrCat(
          origin, "'s table was changed by someone else (",
          FormatDmTable(*live), "); not restoring its original table (",
          FormatDmTable(*table), ") and leaving ", real.name));
    }
    absl::Status st = dm_.Load(origin, *table);
    if (st.ok()) st = dm_.Suspend(origin);
    if (st.ok()) st = dm_.Resume(origin);
    if (!st.ok()) {
      return absl::Status(
          st.code(), absl::StrCat("restoring the original table of ", origin,
                                  ": ", st.message()));
    }
  }
  return dm_.Remove(real.name);
}

absl::StatusOr<std::vector<std::string>> DmSnapshotter::RemoveUnusedReal() {
  absl::StatusOr<std::vector<DmInfo>> all = dm_.List();
  if (!all.ok()) return all.status();
  std::vector<std::string> removed;
  for (const DmInfo& d : *all) {
    std::optional<ParsedDmDevice> p = ParseDmDevice(d.name, d.uuid);
    if (!p.has_value() || p->role != DmRole::kReal) continue;
    if (absl::Status st = ReleaseOrigin(p->origin); !st.ok()) return st;
    absl::StatusOr<std::optional<DmInfo>> still = dm_.InfoByName(d.name);
    if (!still.ok()) return still.status();
    if (!still->has_value()) removed.push_back(d.name);
  }
  return removed;
}

}  // namespace cbtd::snapshot
