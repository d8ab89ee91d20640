// The narrow view of lvm2 that snapshot/ needs: report LVs and VGs, create
// and remove snapshots. The real implementation (linux_lvm.cc) drives the
// lvm2 CLI with `--reportformat json`; tests use fakes.
//
// Thread-safety: implementations are safe to call from several threads
// (lvm2 serialises on its own VG locks).
#ifndef CBTD_SNAPSHOT_LVM_H_
#define CBTD_SNAPSHOT_LVM_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cbtd::snapshot {

// One LV as `lvs -a` reports it. Sizes in bytes, percentages 0..100.
struct LvReport {
  std::string vg;
  std::string name;         // e.g. "data", or "[pool_tmeta]" for hidden LVs
  std::string uuid;         // lvm's LV UUID (with dashes)
  std::string segtype;      // "thin", "thin-pool", "linear", "striped", ...
  std::string pool_lv;      // thin LVs: their pool
  std::string origin;       // snapshots: their origin LV
  std::string metadata_lv;  // thin pools: "[pool_tmeta]"
  std::vector<std::string> tags;
  uint64_t size_bytes = 0;
  std::optional<double> data_percent;      // pools, thin LVs, COW fill
  std::optional<double> metadata_percent;  // thin pools
  std::optional<uint64_t> thin_id;         // thin LVs
  int kernel_major = -1;                   // -1 when not active
  int kernel_minor = -1;
  bool active = false;
  bool snapshot_invalid = false;  // an overflowed thick snapshot

  bool HasTag(std::string_view tag) const;
};

struct VgReport {
  std::string name;
  uint64_t extent_size_bytes = 0;
  uint64_t free_extents = 0;
};

// What lvcreate --snapshot is asked to make. Snapshots are created
// read-only (`--permission r`) and tagged with `tag`.
struct SnapshotRequest {
  std::string vg;
  std::string origin;  // LV name inside vg
  std::string name;    // the new snapshot's LV name
  std::string tag;
  // Thick (COW) snapshots only: the COW size; nullopt for a thin snapshot.
  std::optional<uint64_t> cow_size_bytes;
  // Thin snapshots: activate it (despite the activation-skip flag). A
  // thick snapshot is always active.
  bool activate = true;
};

class Lvm {
 public:
  virtual ~Lvm() = default;

  // Every LV (hidden ones included) of `vg`, or of all VGs when `vg` is
  // empty. NOT_FOUND if the VG does not exist.
  virtual absl::StatusOr<std::vector<LvReport>> ListLvs(
      const std::string& vg) = 0;

  virtual absl::StatusOr<VgReport> GetVg(const std::string& vg) = 0;

  // Creates the snapshot. lvm2 suspends (and freezes a filesystem on) the
  // origin itself, then resumes it: the origin must not be suspended by the
  // caller (lvm2 would skip loading the new tables).
  virtual absl::Status CreateSnapshot(const SnapshotRequest& request) = 0;

  // lvchange -ay -K (activate despite the skip flag) or -an.
  virtual absl::Status SetActive(const std::string& vg, const std::string& name,
                                 bool active) = 0;

  // lvextend of exactly vg/name (a thick snapshot's COW store) to
  // `size_bytes` (lvm2 rounds up to whole extents). Callers check
  // ownership first. RESOURCE_EXHAUSTED if the VG lacks the space.
  virtual absl::Status ExtendLv(const std::string& vg, const std::string& name,
                                uint64_t size_bytes) = 0;

  // lvremove of exactly vg/name. Callers check ownership first.
  virtual absl::Status RemoveLv(const std::string& vg,
                                const std::string& name) = 0;
};

// Parses `lvs -a --reportformat json --units b --nosuffix --binary` output
// with the fields linux_lvm.cc asks for. One entry per LV (lvs prints one
// row per segment; later rows of a multi-segment LV are dropped).
absl::StatusOr<std::vector<LvReport>> ParseLvsJson(const std::string& json);
absl::StatusOr<VgReport> ParseVgsJson(const std::string& json);

// The device-mapper name lvm2 gives vg/lv: dashes doubled, joined by '-'.
std::string DmName(const std::string& vg, const std::string& lv);

}  // namespace cbtd::snapshot

#endif  // CBTD_SNAPSHOT_LVM_H_
