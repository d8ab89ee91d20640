// Agent-managed dm-era stacks: put a block device under `era`, record it,
// re-assemble it at boot, remove it.
//
// Every stack cbtd creates gets a random *generation*, carried in the dm
// UUID ("CBTD-ERA-<generation>") and recorded with the stack's devices in
// a registry (one JSON file per stack, /etc/cbtd/era-stacks by default: on
// the root filesystem, so it is readable before local-fs.target).
// Creating a stack again formats fresh metadata and draws a new
// generation; assembling keeps the recorded one. ComputeEra compares the
// live generation with the one the last run stored, so a rebuilt stack is
// lost even when its fresh metadata has already counted past the stored
// era.
//
// Assembling refuses blank metadata (dm-era would format it and forget
// every write it recorded) and a stack already live under another
// generation.
#ifndef CBTD_CBT_ERA_STACK_H_
#define CBTD_CBT_ERA_STACK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cbt/device_mapper.h"

namespace cbtd::cbt {

inline constexpr char kDefaultEraRegistryDir[] = "/etc/cbtd/era-stacks";

struct EraStackSpec {
  std::string name;           // dm name, e.g. "cbtd-era-data"
  std::string origin_path;    // the tracked block device
  std::string metadata_path;  // small device for era metadata
  uint64_t block_sectors = 128;
  std::string generation;  // set by CreateEraStack
  friend bool operator==(const EraStackSpec&, const EraStackSpec&) = default;
};

// "CBTD-ERA-<generation>".
std::string EraStackUuid(std::string_view generation);
// The generation in a dm UUID; empty when it is not a cbtd era stack's.
std::string EraGenerationOfUuid(std::string_view uuid);
// 16 random hex digits.
std::string NewEraGeneration();

class EraStackRegistry {
 public:
  explicit EraStackRegistry(std::string dir) : dir_(std::move(dir)) {}

  // nullopt when NAME is not recorded; an error when its record is
  // unreadable or damaged.
  absl::StatusOr<std::optional<EraStackSpec>> Find(
      const std::string& name) const;
  // Every record, by name; a damaged one is an error naming its file.
  absl::StatusOr<std::vector<EraStackSpec>> List() const;
  absl::Status Save(const EraStackSpec& spec) const;
  absl::Status Forget(const std::string& name) const;

  const std::string& dir() const { return dir_; }
  static std::string Serialize(const EraStackSpec& spec);
  static absl::StatusOr<EraStackSpec> Parse(std::string_view json,
                                            std::string_view where);

 private:
  std::string PathFor(const std::string& name) const;
  std::string dir_;
};

// Formats fresh metadata under a new generation, loads
// `era <meta> <origin> <block_sectors>` and records the stack. A recorded
// NAME is refused unless `replace` (its tracking is then lost on purpose).
absl::StatusOr<EraStackSpec> CreateEraStack(DeviceMapper& dm,
                                            const EraStackRegistry& registry,
                                            EraStackSpec spec, bool replace);
// Loads a recorded stack over its existing metadata, with its generation.
// ALREADY_EXISTS when it is live with that generation.
absl::Status AssembleEraStack(DeviceMapper& dm, const EraStackSpec& spec);
// Unloads device NAME; FAILED_PRECONDITION while it is open or mounted.
absl::Status RemoveEraStack(DeviceMapper& dm, const std::string& name);

// The generation of the live device NAME; empty when it carries none.
// NOT_FOUND when there is no device NAME.
absl::StatusOr<std::string> LiveEraGeneration(DeviceMapper& dm,
                                              const std::string& name);

// linux_era_stack.cc: zeroes the first 4 KiB of `path`; whether they are
// all zero.
absl::Status ZeroSuperblock(const std::string& path);
absl::StatusOr<bool> SuperblockIsBlank(const std::string& path);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_ERA_STACK_H_
