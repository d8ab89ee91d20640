#include "snapshot/caching_lvm.h"

namespace cbtd::snapshot {

absl::StatusOr<std::vector<LvReport>> CachingLvm::ListLvs(
    const std::string& vg) {
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    if (all_lvs_.has_value()) {
      if (vg.empty()) return *all_lvs_;
      std::vector<LvReport> out;
      for (const LvReport& lv : *all_lvs_) {
        if (lv.vg == vg) out.push_back(lv);
      }
      // None: an empty VG or no such VG; only lvm2 can tell which.
      if (!out.empty()) return out;
    }
    if (!vg.empty()) {
      auto it = vg_lvs_.find(vg);
      if (it != vg_lvs_.end()) return it->second;
    }
    generation = generation_;
  }
  // Outside the lock: lvs takes tenths of a second, and a change racing
  // with it is caught by the generation.
  absl::StatusOr<std::vector<LvReport>> lvs = inner_.ListLvs(vg);
  if (!lvs.ok()) return lvs;
  std::lock_guard lock(mu_);
  if (generation == generation_ && !stopped_) {
    if (vg.empty()) {
      all_lvs_ = *lvs;
    } else {
      vg_lvs_[vg] = *lvs;
    }
  }
  return lvs;
}

absl::StatusOr<VgReport> CachingLvm::GetVg(const std::string& vg) {
  uint64_t generation;
  {
    std::lock_guard lock(mu_);
    auto it = vgs_.find(vg);
    if (it != vgs_.end()) return it->second;
    generation = generation_;
  }
  absl::StatusOr<VgReport> report = inner_.GetVg(vg);
  if (!report.ok()) return report;
  std::lock_guard lock(mu_);
  if (generation == generation_ && !stopped_) vgs_[vg] = *report;
  return report;
}

// Each change invalidates before it runs (no report kept from before it is
// answered after it began) and after it returns (a report that started
// while it ran may show the state before it; a failed command may still
// have changed something).
absl::Status CachingLvm::CreateSnapshot(const SnapshotRequest& request) {
  Invalidate();
  absl::Status st = inner_.CreateSnapshot(request);
  Invalidate();
  return st;
}

absl::Status CachingLvm::SetActive(const std::string& vg,
                                   const std::string& name, bool active) {
  Invalidate();
  absl::Status st = inner_.SetActive(vg, name, active);
  Invalidate();
  return st;
}

absl::Status CachingLvm::ExtendLv(const std::string& vg,
                                  const std::string& name,
                                  uint64_t size_bytes) {
  Invalidate();
  absl::Status st = inner_.ExtendLv(vg, name, size_bytes);
  Invalidate();
  return st;
}

absl::Status CachingLvm::RemoveLv(const std::string& vg,
                                  const std::string& name) {
  Invalidate();
  absl::Status st = inner_.RemoveLv(vg, name);
  Invalidate();
  return st;
}

void CachingLvm::StopCaching() {
  Invalidate();
  std::lock_guard lock(mu_);
  stopped_ = true;
}

void CachingLvm::Invalidate() {
  std::lock_guard lock(mu_);
  ++generation_;
  all_lvs_.reset();
  vg_lvs_.clear();
  vgs_.clear();
}

}  // namespace cbtd::snapshot
