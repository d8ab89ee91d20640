// thin-delta: the changed set between two thin snapshots of one pool, from
// the pool's metadata only (cost follows metadata size, not volume size).
//
//   lock <lock_path>                       (one cbtd run per pool)
//   status of <pool>: a held metadata root here is stale (a killed run;
//     nobody else holds the lock) -> release_metadata_snap
//   message <pool> 0 reserve_metadata_snap   [ScopedMetadataSnap]
//   thin_delta --metadata-snap --snap1 <base> --snap2 <new> <tmeta>
//   message <pool> 0 release_metadata_snap   (every path)
//   unlock
// The status and the messages go through cbt/device_mapper.h.
//
// Contract: cbtd owns metadata-snapshot reservations of the pools it
// tracks; another tool holding one would be released as stale.
#ifndef CBTD_CBT_THIN_DELTA_METHOD_H_
#define CBTD_CBT_THIN_DELTA_METHOD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "cbt/device_mapper.h"
#include "cbt/system.h"

namespace cbtd::cbt {

// Holds a reserved pool metadata snapshot; releases it when destroyed
// unless Release() already did. Not copyable.
//
//   Reserve() --> held --Release()/~--> released
class ScopedMetadataSnap {
 public:
  // `dm_name` is the device taking the messages: a thin pool
  // (reserve/release_metadata_snap) or, with `era`, a dm-era device
  // (take/drop_metadata_snap).
  static absl::StatusOr<std::unique_ptr<ScopedMetadataSnap>> Reserve(
      DeviceMapper& dm, std::string dm_name, bool era);
  ~ScopedMetadataSnap();
  ScopedMetadataSnap(const ScopedMetadataSnap&) = delete;
  ScopedMetadataSnap& operator=(const ScopedMetadataSnap&) = delete;

  absl::Status Release();

 private:
  ScopedMetadataSnap(DeviceMapper& dm, std::string dm_name, bool era)
      : dm_(dm), dm_name_(std::move(dm_name)), era_(era) {}
  DeviceMapper& dm_;
  std::string dm_name_;
  bool era_;
  bool held_ = true;
};

// Releases a metadata snapshot left held by a killed run. Call with the
// lock held. Returns whether one was released.
absl::StatusOr<bool> ReleaseStaleMetadataSnap(DeviceMapper& dm,
                                              const std::string& dm_name,
                                              bool era);

struct ThinDeltaRequest {
  std::string pool_dm_name;  // device with the thin-pool target (...-tpool)
  std::string tmeta_path;  // pool metadata device, e.g. /dev/mapper/vg-p_tmeta
  uint64_t base_thin_id = 0;
  uint64_t new_thin_id = 0;
  uint64_t volume_size_bytes = 0;
  std::string lock_path;
};

// Errors are from device-mapper or thin_delta (the pool, not the chain);
// a base thin id unknown to the pool should be checked by the caller
// (missing base snapshot = lost). `dm` takes the messages, `runner` runs
// thin_delta.
absl::StatusOr<ChangedSet> ComputeThinDelta(CommandRunner& runner,
                                            DeviceMapper& dm,
                                            const ThinDeltaRequest& req);

// The bytes of thin device `thin_id` the pool has mapped, from its
// metadata snapshot (thin_dump --metadata-snap --dev-id, under the same
// lock and reservation as thin_delta): the rest reads as zeros, so a full
// backup need not read it. NOT_FOUND if the pool has no such device.
struct ThinMapRequest {
  std::string pool_dm_name;
  std::string tmeta_path;
  uint64_t thin_id = 0;
  uint64_t volume_size_bytes = 0;
  std::string lock_path;
};
absl::StatusOr<ExtentSet> ComputeThinMapped(CommandRunner& runner,
                                            DeviceMapper& dm,
                                            const ThinMapRequest& req);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_THIN_DELTA_METHOD_H_
