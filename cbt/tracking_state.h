// Persistent, crash-safe tracking state: one record per volume saying what
// the next run's changed set is relative to.
//
// Stored as <dir>/<escaped volume>.json holding the record and a SHA-256
// of it, written with the write-temp + fsync + rename + fsync-dir protocol
// (common::AtomicWriteFile). Save only after the receiver committed the
// new version: a failed or killed run leaves the old base in place, so the
// next changed set still covers everything since the last commit.
//
// Load never guesses: a missing, unreadable, torn or mismatching record is
// reported as lost with the reason (the run then falls back to hash).
//
// Thread-safety: one store per process; callers serialise per volume.
#ifndef CBTD_CBT_TRACKING_STATE_H_
#define CBTD_CBT_TRACKING_STATE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cbt/changed_set.h"

namespace cbtd::cbt {

struct TrackingState {
  std::string volume;  // e.g. "vg/lv" or a device path
  Method method = Method::kHash;
  std::string generation;
  std::string base_snapshot_name;
  std::string base_snapshot_uuid;
  uint64_t base_thin_id = 0;
  uint64_t era_since = 0;
  std::string base_version_id;  // at the receiver
  std::string base_root_hash;   // hex
  friend bool operator==(const TrackingState&, const TrackingState&) = default;
};

struct LoadedState {
  std::optional<TrackingState> state;  // set when valid
  std::string lost_reason;             // set when not
};

// Where the record bytes go; the real one is AtomicWriteFile/ReadFile, the
// fault tests wrap it to lose writes.
class StateFileIo {
 public:
  virtual ~StateFileIo() = default;
  virtual absl::Status Write(const std::string& path,
                             std::string_view contents) = 0;
  // NOT_FOUND when the file does not exist.
  virtual absl::StatusOr<std::string> Read(const std::string& path) = 0;
};
std::unique_ptr<StateFileIo> NewAtomicStateFileIo();

class TrackingStateStore {
 public:
  TrackingStateStore(std::string dir, std::unique_ptr<StateFileIo> io)
      : dir_(std::move(dir)), io_(std::move(io)) {}

  absl::Status Save(const TrackingState& state);
  // Errors only when the file exists but cannot be read for an OS reason
  // that may pass (EIO, permissions): the caller retries or fails the run.
  absl::StatusOr<LoadedState> Load(const std::string& volume);

  std::string PathFor(const std::string& volume) const;

  // The bytes Save writes, exposed for tests.
  static std::string Serialize(const TrackingState& state);

 private:
  std::string dir_;
  std::unique_ptr<StateFileIo> io_;
};

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_TRACKING_STATE_H_
