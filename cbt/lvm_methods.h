// thin-delta and cow-table addressed by LVM names: looks the LVs up with
// `lvs` (cbt/lvm_query.h) and turns a missing or mismatched base into a
// lost set with the reason, then runs the method.
#ifndef CBTD_CBT_LVM_METHODS_H_
#define CBTD_CBT_LVM_METHODS_H_

#include <string>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "cbt/device_mapper.h"
#include "cbt/system.h"

namespace cbtd::cbt {

// `volume`, `base`, `next` are "VG/LV": the tracked thin LV, the previous
// run's thin snapshot and the new one. Lost when the base is missing or the
// two snapshots are not thin volumes of one pool. The pool lock lives in
// `lock_dir` (e.g. /run/cbtd). `runner` runs lvs and thin_delta, `dm` takes
// the pool's metadata-snapshot messages.
absl::StatusOr<ChangedSet> ThinDeltaBetweenLvs(CommandRunner& runner,
                                               DeviceMapper& dm,
                                               const std::string& volume,
                                               const std::string& base,
                                               const std::string& next,
                                               const std::string& lock_dir);

// The bytes thin LV `lv` ("VG/LV", e.g. a new thin snapshot) has mapped in
// its pool (ComputeThinMapped). FAILED_PRECONDITION if it is not thin.
absl::StatusOr<ExtentSet> ThinMappedOfLv(CommandRunner& runner,
                                         DeviceMapper& dm,
                                         const std::string& lv,
                                         const std::string& lock_dir);

// `volume` is the thick origin, `base` the previous run's COW snapshot of
// it. Lost when the base is missing, not a snapshot of `volume`, or its
// COW store is invalid or corrupt.
absl::StatusOr<ChangedSet> CowTableOfLv(CommandRunner& runner,
                                        const std::string& volume,
                                        const std::string& base);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_LVM_METHODS_H_
