#include "snapshot/cow_guard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cbtd::snapshot {
namespace {

std::string Mib(uint64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

// The snapshot target's status params, or nothing when `dm_name` is not a
// snapshot device (gone, or not yet).
std::optional<std::string> SnapshotStatus(DeviceMapper& dm,
                                          const std::string& dm_name) {
  absl::StatusOr<DmTable> st = dm.Status(dm_name);
  if (!st.ok() || st->size() != 1 || (*st)[0].type != "snapshot") {
    return std::nullopt;
  }
  return (*st)[0].params;
}

}  // namespace

CowGuard::CowGuard(Lvm& lvm, DeviceMapper& dm,
                   std::vector<GuardedSnapshot> snapshots,
                   CowGuardOptions options)
    : lvm_(lvm), dm_(dm), snapshots_(std::move(snapshots)), options_(options) {
  if (!snapshots_.empty()) poller_ = std::thread([this] { Poll(); });
}

CowGuard::~CowGuard() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void CowGuard::Poll() {
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, options_.interval, [this] { return stop_; })) {
    lock.unlock();
    CheckNow();
    lock.lock();
  }
}

void CowGuard::CheckNow() {
  std::lock_guard check(check_mu_);
  for (const GuardedSnapshot& s : snapshots_) {
    const std::optional<std::string> status =
        SnapshotStatus(dm_, DmName(s.vg, s.name));
    if (!status.has_value()) continue;
    const std::optional<double> percent = SnapshotFillPercent(*status);
    if (!percent.has_value()) continue;  // overflowed: Overflow() says so
    if (*percent < options_.extend_at_percent) continue;
    Extend(s, *percent, SnapshotCowBytes(*status));
  }
}

void CowGuard::Extend(const GuardedSnapshot& s, double percent,
                      uint64_t size_bytes) {
  const std::string what = absl::StrCat(
      "COW snapshot ", s.vg, "/", s.name, " of volume '", s.volume, "' (",
      absl::StrFormat("%.0f", percent), "% full of ", Mib(size_bytes), ")");
  absl::StatusOr<VgReport> vg = lvm_.GetVg(s.vg);
  if (!vg.ok()) {
    Note(absl::StrCat("cannot extend ", what, ": ", vg.status().message()));
    return;
  }
  const uint64_t extent = std::max<uint64_t>(vg->extent_size_bytes, 1);
  const uint64_t free = vg->free_extents * extent;
  uint64_t want = size_bytes + std::max(size_bytes / 2, extent);
  want = std::min({want, s.limit_bytes, size_bytes + free});
  // lvm2 rounds up to whole extents: less than one more is no growth.
  if (want < size_bytes + extent) {
    if (refused_.insert(s.name).second) {
      Note(absl::StrCat(
          "cannot extend ", what, ": ",
          size_bytes + extent > s.limit_bytes
              ? absl::StrCat("it is at its limit of ", Mib(s.limit_bytes), " (",
                             s.limit_setting, ")")
              : absl::StrCat("VG ", s.vg, " has ", Mib(free), " free")));
    }
    return;
  }
  if (absl::Status st = lvm_.ExtendLv(s.vg, s.name, want); !st.ok()) {
    Note(absl::StrCat("cannot extend ", what, ": ", st.message()));
    return;
  }
  Note(absl::StrCat("extended ", what, " to ", Mib(want)));
}

std::string CowGuard::Overflow(const std::string& volume) {
  for (const GuardedSnapshot& s : snapshots_) {
    if (s.volume != volume) continue;
    const std::optional<std::string> status =
        SnapshotStatus(dm_, DmName(s.vg, s.name));
    if (!status.has_value() || SnapshotFillPercent(*status).has_value()) {
      continue;
    }
    return absl::StrCat(
        "the COW snapshot ", s.vg, "/", s.name, " of volume '", volume,
        "' overflowed: writes to the volume during the backup filled its COW "
        "store (it may grow to ",
        Mib(s.limit_bytes), ", ", s.limit_setting,
        "), so the kernel dropped the snapshot. Raise cow_size or ",
        s.limit_setting, " for volume '", volume,
        "' in cbtd.conf, or free space in VG ", s.vg,
        ", then run the backup again");
  }
  return "";
}

std::vector<std::string> CowGuard::notes() {
  std::lock_guard lock(mu_);
  return notes_;
}

void CowGuard::Note(const std::string& line) {
  if (options_.on_note) options_.on_note(line);
  std::lock_guard lock(mu_);
  notes_.push_back(line);
}

}  // namespace cbtd::snapshot
