// era: changed blocks of a device under an agent-managed dm-era stack.
//
// A run, right after the new snapshot (or copy) of the era device is taken:
//   lock; drop a stale metadata snapshot (killed run)
//   dmsetup message <era> 0 checkpoint      archives the current writeset
//   dmsetup status <era> -> current era E   every write after the snapshot
//                                           is in era >= E-1
//   take_metadata_snap; era_invalidate --written-since <since>
//     --metadata-snapshot <metadata dev>; drop_metadata_snap (every path)
// The result covers every block written in era >= since; the caller
// stores next_since_era = E-1 once the receiver has committed.
//
// The stack itself: CreateEraStack formats fresh metadata (zeroes its
// superblock) and loads `era <meta> <origin> <block_sectors>`;
// AssembleEraStack loads the same table over existing metadata (at boot,
// before anything writes to the origin); RemoveEraStack removes the
// mapping (the origin is then written untracked: the next run is lost).
#ifndef CBTD_CBT_ERA_METHOD_H_
#define CBTD_CBT_ERA_METHOD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "cbt/system.h"

namespace cbtd::cbt {

struct EraRequest {
  std::string era_dm_name;
  std::string metadata_path;
  uint64_t since_era = 0;  // from the tracking state of the last run
  std::string lock_path;
};

struct EraResult {
  ChangedSet set;
  uint64_t next_since_era = 0;
};

// Lost (in the result) when the era went backwards (stack rebuilt with new
// metadata). Errors: the device is missing or not an era target, tool
// failures.
absl::StatusOr<EraResult> ComputeEra(CommandRunner& runner,
                                     const EraRequest& req);

struct EraStackSpec {
  std::string name;           // dm name, e.g. "cbtd-era-data"
  std::string origin_path;    // the tracked block device
  std::string metadata_path;  // small device for era metadata
  uint64_t block_sectors = 128;
};

absl::Status CreateEraStack(CommandRunner& runner, const EraStackSpec& spec);
absl::Status AssembleEraStack(CommandRunner& runner, const EraStackSpec& spec);
absl::Status RemoveEraStack(CommandRunner& runner, const std::string& name);

// Zeroes the first 4 KiB of `path` (linux_era_stack.cc).
absl::Status ZeroSuperblock(const std::string& path);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_ERA_METHOD_H_
