// The few LVM facts the tracking methods need, read with
// `lvs --reportformat json` through a CommandRunner. Deliberately minimal
// and owned by cbt/ (snapshot/ has the full lvm2 adapter).
#ifndef CBTD_CBT_LVM_QUERY_H_
#define CBTD_CBT_LVM_QUERY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "cbt/system.h"

namespace cbtd::cbt {

struct LvInfo {
  std::string vg;
  std::string lv;
  std::string segtype;  // "thin", "linear", ...
  std::string pool_lv;  // thin pool, for thin LVs
  std::string origin;   // for snapshots
  std::string attr;     // lv_attr, e.g. "swi-a-s---"
  uint64_t size_bytes = 0;
  uint64_t thin_id = 0;  // 0 when not thin
  bool has_thin_id = false;
};

// `vg_lv` is "VG/LV". NOT_FOUND when LVM does not know it.
absl::StatusOr<LvInfo> QueryLv(CommandRunner& runner, const std::string& vg_lv);

// Linux device-mapper name of an LV: "-" inside VG and LV names doubled,
// joined by "-", plus an optional layer ("tpool", "cow", "tmeta" -> "_tmeta"
// is part of the LV name and is passed as such).
std::string LvmDmName(const std::string& vg, const std::string& lv,
                      const std::string& layer = "");

enum class VolumeKind { kLvmThin, kLvmThick, kEraStack, kOther };

// `auto`: thin -> thin-delta, thick LV -> cow-table, era stack -> era,
// anything else -> hash; a caller-supplied extent list -> external.
Method SelectMethod(VolumeKind kind, bool have_external_list);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_LVM_QUERY_H_
