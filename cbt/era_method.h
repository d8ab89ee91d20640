// era: changed blocks of a device under an agent-managed dm-era stack.
//
// A run, right after the new snapshot (or copy) of the era device is taken:
//   lock; drop a stale metadata snapshot (killed run)
//   message <era> 0 checkpoint              archives the current writeset
//   status of <era> -> current era E        every write after the snapshot
//                                           is in era >= E-1
//   take_metadata_snap; era_invalidate --written-since <since>
//     --metadata-snapshot <metadata dev>; drop_metadata_snap (every path)
// The result covers every block written in era >= since; the caller
// stores next_since_era = E-1 once the receiver has committed.
//
// The stack itself (create, assemble at boot, remove) is cbt/era_stack.h.
// A request that names the generation the last run saw is lost when the
// live stack carries another one (rebuilt), or none.
#ifndef CBTD_CBT_ERA_METHOD_H_
#define CBTD_CBT_ERA_METHOD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "cbt/device_mapper.h"
#include "cbt/system.h"

namespace cbtd::cbt {

struct EraRequest {
  std::string era_dm_name;
  std::string metadata_path;
  uint64_t since_era = 0;  // from the tracking state of the last run
  // The stack's generation at the last run (era_stack.h); empty: unchecked.
  std::string expected_generation;
  std::string lock_path;
};

struct EraResult {
  ChangedSet set;
  uint64_t next_since_era = 0;
  std::string generation;  // the live stack's; store it with next_since_era
};

// Lost (in the result) when the stack's generation is not the expected one
// or the era went backwards (stack rebuilt with new metadata). Errors: the
// device is missing or not an era target, device-mapper or era_invalidate
// failures. `dm` takes the messages, `runner` runs era_invalidate.
absl::StatusOr<EraResult> ComputeEra(CommandRunner& runner, DeviceMapper& dm,
                                     const EraRequest& req);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_ERA_METHOD_H_
