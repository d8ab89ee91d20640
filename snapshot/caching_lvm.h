// An Lvm that keeps the reports of another one, so that one snapshot
// operation runs `lvs` and `vgs` as seldom as it can (each run costs a host
// a few tenths of a second).
//
// Lifetime: ONE operation (one consistency point, one cleanup), never the
// process. Build one per operation over the long-lived Lvm and drop it when
// the operation ends. While it lives it sees its own changes but NOT lvm2
// changes made by anyone else (another lvm2 command, another CachingLvm, a
// thin pool filling up): its reports are as of the first report after its
// last own change.
//
// What is kept:
//   - ListLvs(""): the first call's report; later calls are copies of it.
//   - ListLvs(vg): the LVs of `vg` in the full report when that report
//     holds at least one; otherwise (no full report yet, or `vg` has no LV
//     in it: an empty VG, or no such VG) the inner answer, then kept per
//     `vg`. So NOT_FOUND for a missing VG still comes from lvm2.
//   - GetVg(vg): per `vg`.
// CreateSnapshot, SetActive, ExtendLv and RemoveLv drop everything kept, before
// they run and again when they return (whatever they return), then the next
// report is fresh. Errors of the inner Lvm are returned unchanged and never
// kept: the next call asks again.
//
// Thread-safety: safe from several threads, as every Lvm. The inner Lvm is
// called without the lock held; two threads that miss at once both ask it.
// A report that was running while a change was made is returned to its
// caller but not kept.
#ifndef CBTD_SNAPSHOT_CACHING_LVM_H_
#define CBTD_SNAPSHOT_CACHING_LVM_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "snapshot/lvm.h"

namespace cbtd::snapshot {

class CachingLvm : public Lvm {
 public:
  // `inner` must outlive this object.
  explicit CachingLvm(Lvm& inner) : inner_(inner) {}
  CachingLvm(const CachingLvm&) = delete;
  CachingLvm& operator=(const CachingLvm&) = delete;

  // Ends the operation: drops everything kept and keeps nothing from now
  // on (every call goes to the inner Lvm). For an object that must outlive
  // the operation, as the Snapshotter of a consistency point does until the
  // run that uses it ends.
  void StopCaching();

  absl::StatusOr<std::vector<LvReport>> ListLvs(const std::string& vg) override;
  absl::StatusOr<VgReport> GetVg(const std::string& vg) override;
  absl::Status CreateSnapshot(const SnapshotRequest& request) override;
  absl::Status SetActive(const std::string& vg, const std::string& name,
                         bool active) override;
  absl::Status ExtendLv(const std::string& vg, const std::string& name,
                        uint64_t size_bytes) override;
  absl::Status RemoveLv(const std::string& vg,
                        const std::string& name) override;

 private:
  // Drops everything kept and makes reports already running unkeepable.
  void Invalidate();

  Lvm& inner_;
  std::mutex mu_;
  // Bumped by every Invalidate(): a report is kept only if no change began
  // or ended while it ran.
  uint64_t generation_ = 0;                              // guarded by mu_
  bool stopped_ = false;                                 // guarded by mu_
  std::optional<std::vector<LvReport>> all_lvs_;         // guarded by mu_
  std::map<std::string, std::vector<LvReport>> vg_lvs_;  // guarded by mu_
  std::map<std::string, VgReport> vgs_;                  // guarded by mu_
};

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_CACHING_LVM_H_
