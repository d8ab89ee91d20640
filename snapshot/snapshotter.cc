#include "snapshot/snapshotter.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "snapshot/dm_snapshotter.h"
#include "snapshot/naming.h"

namespace cbtd::snapshot {
namespace {

constexpr char kDmVg[] = "dm";  // FullName() of dm snapshots: dm/NAME

bool IsDmVolume(const VolumeInfo& v) {
  return v.kind == VolumeKind::kOtherDm && v.not_snapshottable_reason.empty();
}

bool IsOurs(const LvReport& lv) {
  return lv.HasTag(kSnapshotTag) && ParseSnapshotName(lv.name).has_value();
}

SnapshotInfo ToInfo(const LvReport& lv) {
  SnapshotInfo s;
  s.vg = lv.vg;
  s.name = lv.name;
  s.origin = lv.origin;
  s.timestamp = ParseSnapshotName(lv.name)->timestamp;
  s.kind = lv.segtype == "thin" ? VolumeKind::kThinLv : VolumeKind::kThickLv;
  s.uuid = lv.uuid;
  s.size_bytes = lv.size_bytes;
  s.active = lv.active;
  s.device_path = "/dev/mapper/" + DmName(lv.vg, lv.name);
  if (s.kind == VolumeKind::kThickLv) {
    s.cow_dm_path = s.device_path + "-cow";
    s.cow_fill_percent = lv.data_percent;
    s.invalid = lv.snapshot_invalid;
  } else {
    s.thin_id = lv.thin_id;
    s.pool_lv = lv.pool_lv;
  }
  return s;
}

std::string Mib(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

Snapshotter::Snapshotter(Lvm& lvm, DeviceMapper& dm, Host& host,
                         SnapshotPolicy policy)
    : lvm_(lvm), dm_(dm), host_(host), policy_(policy) {}

uint64_t Snapshotter::PolicyCowBytes(const VolumeInfo& volume) const {
  std::optional<uint64_t> fixed = policy_.cow_size_bytes;
  double percent = policy_.cow_percent;
  if (auto it = policy_.cow_size_bytes_for.find(volume.path);
      it != policy_.cow_size_bytes_for.end()) {
    fixed = it->second;
  } else if (auto pt = policy_.cow_percent_for.find(volume.path);
             pt != policy_.cow_percent_for.end()) {
    fixed.reset();
    percent = pt->second;
  }
  return fixed.has_value()
             ? *fixed
             : static_cast<uint64_t>(std::ceil(
                   static_cast<double>(volume.size_bytes) * percent / 100.0));
}

uint64_t Snapshotter::CowSizeBytes(const VolumeInfo& volume) const {
  uint64_t bytes = PolicyCowBytes(volume);
  if (auto it = learned_cow_bytes_.find(volume.path);
      it != learned_cow_bytes_.end()) {
    bytes = std::max(bytes, it->second);
  }
  // lvcreate --size takes whole 512-byte sectors only.
  return (bytes + 511) / 512 * 512;
}

uint64_t Snapshotter::CowLimitBytes(const VolumeInfo& volume) const {
  if (auto it = policy_.cow_limit_bytes_for.find(volume.path);
      it != policy_.cow_limit_bytes_for.end() && it->second > 0) {
    return it->second;
  }
  double percent = 100.0;
  if (auto it = policy_.cow_limit_percent_for.find(volume.path);
      it != policy_.cow_limit_percent_for.end()) {
    percent = it->second;
  }
  return static_cast<uint64_t>(static_cast<double>(volume.size_bytes) *
                               percent / 100.0);
}

absl::StatusOr<uint64_t> Snapshotter::LearnedCowBytes(
    const VolumeInfo& volume) {
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs(volume.vg);
  if (!lvs.ok()) return lvs.status();
  uint64_t held = 0;
  for (const LvReport& lv : *lvs) {
    if (lv.origin != volume.lv || !lv.data_percent.has_value() ||
        !ParseSnapshotName(lv.name).has_value()) {
      continue;
    }
    held = std::max(held,
                    static_cast<uint64_t>(static_cast<double>(lv.size_bytes) *
                                          *lv.data_percent / 100.0));
  }
  return held;
}

absl::Status Snapshotter::LearnCowSizes(
    const std::vector<VolumeInfo>& volumes) {
  std::map<std::string, uint64_t> spare_by_vg;  // free beyond the policy's
  for (const VolumeInfo& v : volumes) {
    if (v.kind != VolumeKind::kThickLv) continue;
    absl::StatusOr<uint64_t> held = LearnedCowBytes(v);
    if (!held.ok()) return held.status();
    const uint64_t want = std::min(2 * *held, CowLimitBytes(v));
    const uint64_t policy = PolicyCowBytes(v);
    if (want <= policy) continue;
    if (!spare_by_vg.contains(v.vg)) {
      absl::StatusOr<VgReport> vg = lvm_.GetVg(v.vg);
      if (!vg.ok()) return vg.status();
      const uint64_t extent = std::max<uint64_t>(vg->extent_size_bytes, 1);
      uint64_t taken = 0;  // the policy's sizes, one extent of slack each
      for (const VolumeInfo& o : volumes) {
        if (o.vg == v.vg && o.kind == VolumeKind::kThickLv) {
          taken += PolicyCowBytes(o) + extent;
        }
      }
      const uint64_t free = vg->free_extents * extent;
      spare_by_vg[v.vg] = free > taken ? free - taken : 0;
    }
    uint64_t& spare = spare_by_vg[v.vg];
    const uint64_t raise = std::min(want - policy, spare);
    if (raise == 0) continue;
    spare -= raise;
    learned_cow_bytes_[v.path] = policy + raise;
    notes_.push_back(absl::StrFormat(
        "sized the COW snapshot of %s at %.1f MiB: its last snapshot holds "
        "%.1f MiB of writes (cow_size gives %.1f MiB, cow_max_size bounds it)",
        v.path, static_cast<double>(policy + raise) / (1 << 20),
        static_cast<double>(*held) / (1 << 20),
        static_cast<double>(policy) / (1 << 20)));
  }
  return absl::OkStatus();
}

namespace {

// map[to] = map[from] if `from` has an entry; `to` loses its own first.
template <typename Map>
void CopyEntry(Map& map, const std::string& from, const std::string& to) {
  map.erase(to);
  if (auto it = map.find(from); it != map.end()) map[to] = it->second;
}

}  // namespace

void Snapshotter::InheritCowSize(const std::string& from,
                                 const std::string& to) {
  CopyEntry(policy_.cow_size_bytes_for, from, to);
  CopyEntry(policy_.cow_percent_for, from, to);
  CopyEntry(policy_.cow_limit_bytes_for, from, to);
  CopyEntry(policy_.cow_limit_percent_for, from, to);
}

absl::Status Snapshotter::CheckCanSnapshot(
    const std::vector<VolumeInfo>& volumes) {
  if (absl::Status s = LearnCowSizes(volumes); !s.ok()) return s;
  std::map<std::string, uint64_t> cow_bytes_by_vg;
  // COW stores of dm members by device, and the members' own devices.
  std::map<std::pair<uint32_t, uint32_t>, std::string> store_users;
  for (const VolumeInfo& v : volumes) {
    store_users[{v.major, v.minor}] = v.path;
  }
  for (const VolumeInfo& v : volumes) {
    if (IsDmVolume(v)) {
      auto it = policy_.dm_cow_device_for.find(v.path);
      const std::string store =
          it == policy_.dm_cow_device_for.end() ? "" : it->second;
      absl::StatusOr<BlockDeviceId> id =
          DmSnapshotter(dm_, host_).Check(v, store, CowSizeBytes(v));
      if (!id.ok()) return id.status();
      auto [user, fresh] =
          store_users.emplace(std::make_pair(id->major, id->minor), v.path);
      if (!fresh) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot snapshot ", v.path, ": its COW store ", store, " is also ",
            user->second,
            user->second == v.path ? "'s store" : " (or its COW store)",
            "; every dm volume needs a COW store of its own"));
      }
      continue;
    }
    if (v.kind != VolumeKind::kThinLv && v.kind != VolumeKind::kThickLv) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot snapshot ", v.path, ": ", v.not_snapshottable_reason));
    }
    if (v.kind == VolumeKind::kThinLv) {
      const double limit = policy_.pool_fill_limit_percent;
      struct {
        const char* what;
        std::optional<double> percent;
        const char* fix;
      } checks[] = {
          {"data", v.pool_data_percent, "lvextend -L+SIZE"},
          {"metadata", v.pool_metadata_percent,
           "lvextend --poolmetadatasize +SIZE"},
      };
      for (const auto& c : checks) {
        if (c.percent.has_value() && *c.percent > limit) {
          return absl::FailedPreconditionError(absl::StrFormat(
              "refusing to snapshot %s: thin pool %s/%s %s is %.1f%% full, "
              "over the %.0f%% limit for snapshots (a full pool stops every "
              "thin LV in it). Grow the pool (%s %s/%s), remove old "
              "snapshots, or raise the limit",
              v.path, v.vg, v.pool_lv, c.what, *c.percent, limit, c.fix, v.vg,
              v.pool_lv));
        }
      }
    } else {
      cow_bytes_by_vg[v.vg] += CowSizeBytes(v);
    }
  }
  for (const auto& [vg_name, wanted] : cow_bytes_by_vg) {
    absl::StatusOr<VgReport> vg = lvm_.GetVg(vg_name);
    if (!vg.ok()) return vg.status();
    const uint64_t extent = std::max<uint64_t>(vg->extent_size_bytes, 1);
    // Each snapshot is rounded up to whole extents; summing rounded-up
    // sizes per volume would be exact, the sum plus one extent per volume
    // is a safe upper bound.
    uint64_t need_extents = (wanted + extent - 1) / extent;
    for (const VolumeInfo& v : volumes) {
      if (v.vg == vg_name && v.kind == VolumeKind::kThickLv) ++need_extents;
    }
    if (need_extents > vg->free_extents) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "refusing to snapshot: VG ", vg_name, " has ",
          Mib(vg->free_extents * extent), " free, the COW snapshot(s) need ",
          Mib(need_extents * extent),
          ". Add space (vgextend), remove old snapshots, or set a smaller "
          "COW size (--cow-size / --cow-percent)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ScopedSnapshot>> Snapshotter::Create(
    const VolumeInfo& volume, const std::string& name, bool activate) {
  if (IsDmVolume(volume)) {
    absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
        PrepareDm(volume, name);
    if (!snap.ok()) return snap.status();
    absl::Status st = dm_.Suspend(volume.dm_name);
    if (st.ok()) st = TakeDm(volume, name);
    st.Update(dm_.Resume(volume.dm_name));
    if (!st.ok()) {
      absl::Status undo = (*snap)->Remove();
      return absl::Status(
          st.code(),
          absl::StrCat("snapshot of ", volume.path, " failed: ", st.message(),
                       undo.ok() ? "" : "; undoing: ", undo.message()));
    }
    return snap;
  }
  SnapshotRequest req;
  req.activate = activate;
  req.vg = volume.vg;
  req.origin = volume.lv;
  req.name = name;
  req.tag = std::string(kSnapshotTag);
  if (volume.kind == VolumeKind::kThickLv) {
    req.cow_size_bytes = CowSizeBytes(volume);
  } else if (volume.kind != VolumeKind::kThinLv) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot snapshot ", volume.path, ": ",
                     volume.not_snapshottable_reason));
  }
  absl::Status st = lvm_.CreateSnapshot(req);
  if (!st.ok()) {
    // A killed lvcreate may have left the LV behind; remove it if so (it
    // carries our tag and name). Only after a timeout: any other failure
    // may be "already exists", and that LV is not this call's to remove.
    if (absl::IsDeadlineExceeded(st) && Get(volume.vg, name).ok()) {
      (void)lvm_.RemoveLv(volume.vg, name);
    }
    return absl::Status(st.code(), absl::StrCat("snapshot of ", volume.path,
                                                " failed: ", st.message()));
  }
  return std::make_unique<ScopedSnapshot>(this, volume.vg, name);
}

absl::StatusOr<std::unique_ptr<ScopedSnapshot>> Snapshotter::PrepareDm(
    const VolumeInfo& volume, const std::string& name) {
  std::optional<ParsedSnapshotName> parsed = ParseDmSnapshotName(name);
  if (!parsed.has_value() || parsed->origin != volume.dm_name) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is not a dm snapshot name for ", volume.dm_name));
  }
  auto it = policy_.dm_cow_device_for.find(volume.path);
  const std::string store =
      it == policy_.dm_cow_device_for.end() ? "" : it->second;
  DmSnapshotter dm_snapshotter(dm_, host_);
  absl::StatusOr<BlockDeviceId> checked =
      dm_snapshotter.Check(volume, store, CowSizeBytes(volume));
  if (!checked.ok()) return checked.status();
  absl::Status st = dm_snapshotter.Prepare(volume, store, parsed->timestamp);
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("snapshot of ", volume.path,
                                                " failed: ", st.message()));
  }
  return std::make_unique<ScopedSnapshot>(this, "", name);
}

absl::Status Snapshotter::TakeDm(const VolumeInfo& volume,
                                 const std::string& name) {
  std::optional<ParsedSnapshotName> parsed = ParseDmSnapshotName(name);
  if (!parsed.has_value() || parsed->origin != volume.dm_name) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is not a dm snapshot name for ", volume.dm_name));
  }
  return DmSnapshotter(dm_, host_).TakeSuspended(volume, parsed->timestamp);
}

absl::Status Snapshotter::Activate(const ScopedSnapshot& snapshot) {
  return lvm_.SetActive(snapshot.vg(), snapshot.name(), true);
}

absl::Status Snapshotter::Deactivate(const std::string& vg,
                                     const std::string& name) {
  absl::StatusOr<SnapshotInfo> s = Get(vg, name);
  if (!s.ok()) return s.status();
  if (s->kind == VolumeKind::kOtherDm) {
    return absl::FailedPreconditionError(
        absl::StrCat(s->FullName(), " is a dm snapshot; it is always active"));
  }
  return lvm_.SetActive(vg, name, false);
}

absl::StatusOr<std::vector<SnapshotInfo>> Snapshotter::List(
    const std::string& vg) {
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs(vg);
  if (!lvs.ok()) return lvs.status();
  std::vector<SnapshotInfo> out;
  for (const LvReport& lv : *lvs) {
    if (IsOurs(lv)) out.push_back(ToInfo(lv));
  }
  if (vg.empty()) {
    absl::StatusOr<std::vector<SnapshotInfo>> dm =
        DmSnapshotter(dm_, host_).List();
    if (!dm.ok()) return dm.status();
    out.insert(out.end(), dm->begin(), dm->end());
  }
  std::sort(out.begin(), out.end(),
            [](const SnapshotInfo& a, const SnapshotInfo& b) {
              return std::tie(a.timestamp, a.vg, a.name) <
                     std::tie(b.timestamp, b.vg, b.name);
            });
  return out;
}

absl::StatusOr<SnapshotInfo> Snapshotter::Get(const std::string& vg,
                                              const std::string& name) {
  absl::Status dm_status;
  if (vg.empty() || vg == kDmVg) {
    absl::StatusOr<SnapshotInfo> dm = DmSnapshotter(dm_, host_).Get(name);
    if (vg.empty() || dm.ok()) return dm;
    dm_status = dm.status();  // "dm/NAME": maybe an LV in a VG named dm
  }
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs(vg);
  // "dm/NAME" and no VG called dm: the dm answer stands.
  if (!lvs.ok()) return dm_status.ok() ? lvs.status() : dm_status;
  bool lv_exists = false;
  for (const LvReport& lv : *lvs) lv_exists |= lv.name == name;
  if (!dm_status.ok() && !lv_exists) return dm_status;
  for (const LvReport& lv : *lvs) {
    if (lv.name != name) continue;
    if (!IsOurs(lv)) {
      return absl::FailedPreconditionError(absl::StrCat(
          vg, "/", name, " is not a cbtd snapshot (it lacks the '",
          std::string(kSnapshotTag),
          "' tag or a cbtd snapshot name); cbtd never changes LVs it did "
          "not create"));
    }
    return ToInfo(lv);
  }
  return absl::NotFoundError(
      absl::StrCat("no snapshot ", vg, "/", name, " (see `lvs ", vg, "`)"));
}

absl::Status Snapshotter::Remove(const std::string& vg,
                                 const std::string& name) {
  absl::StatusOr<SnapshotInfo> s = Get(vg, name);
  if (!s.ok()) return s.status();
  if (s->kind == VolumeKind::kOtherDm) {
    return DmSnapshotter(dm_, host_).Remove(name);
  }
  return lvm_.RemoveLv(vg, name);
}

absl::StatusOr<std::vector<SnapshotInfo>> Snapshotter::RemoveOrphans(
    const std::set<std::string>& keep) {
  absl::StatusOr<std::vector<SnapshotInfo>> all = List();
  if (!all.ok()) return all.status();
  std::vector<SnapshotInfo> removed;
  for (const SnapshotInfo& s : *all) {
    if (keep.count(s.FullName())) continue;
    absl::Status st = Remove(s.vg, s.name);
    if (!st.ok()) return st;
    removed.push_back(s);
  }
  absl::StatusOr<std::vector<std::string>> reals =
      DmSnapshotter(dm_, host_).RemoveUnusedReal();
  if (!reals.ok()) return reals.status();
  return removed;
}

ScopedSnapshot::~ScopedSnapshot() {
  absl::Status st = Remove();
  if (!st.ok()) {
    // Nowhere to return it; orphan cleanup removes it later.
    std::cerr << "cbtd: could not remove snapshot "
              << (vg_.empty() ? kDmVg : vg_) << "/" << name_ << ": " << st
              << "\n";
  }
}

absl::Status ScopedSnapshot::Remove() {
  if (snapshotter_ == nullptr) return absl::OkStatus();
  Snapshotter* s = snapshotter_;
  snapshotter_ = nullptr;
  return s->Remove(vg_, name_);
}

}  // namespace cbtd::snapshot
