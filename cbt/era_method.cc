#include "cbt/era_method.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/era_stack.h"
#include "cbt/era_xml.h"
#include "cbt/thin_delta_method.h"
#include "cbt/xml_elements.h"

namespace cbtd::cbt {
namespace {

struct EraTable {
  uint64_t size_bytes = 0;
  uint64_t block_sectors = 0;
};

// "0 <sectors> era <meta maj:min> <origin maj:min> <block sectors>"
absl::StatusOr<EraTable> ReadEraTable(CommandRunner& runner,
                                      const std::string& name) {
  absl::StatusOr<std::string> table = runner.Run({"dmsetup", "table", name});
  if (!table.ok()) return table.status();
  EraTable t;
  uint64_t sectors = 0;
  absl::StatusOr<std::string> target = DmStatusField(*table, 2, name);
  absl::StatusOr<std::string> len = DmStatusField(*table, 1, name);
  absl::StatusOr<std::string> bs = DmStatusField(*table, 5, name);
  if (!target.ok() || !len.ok() || !bs.ok() || *target != "era" ||
      !ParseDecimalUint64(*len, &sectors) ||
      !ParseDecimalUint64(*bs, &t.block_sectors) || t.block_sectors == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is not a dm-era device (table: '", *table,
                     "'); put the volume under an era stack first"));
  }
  t.size_bytes = sectors * 512;
  return t;
}

absl::StatusOr<uint64_t> CurrentEra(CommandRunner& runner,
                                    const std::string& name) {
  absl::StatusOr<std::string> status = runner.Run({"dmsetup", "status", name});
  if (!status.ok()) return status.status();
  absl::StatusOr<std::string> f = DmStatusField(*status, 5, name);
  if (!f.ok()) return f.status();
  uint64_t era = 0;
  if (!ParseDecimalUint64(*f, &era)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dmsetup status ", name, ": era '", *f, "' not a number"));
  }
  return era;
}

}  // namespace

absl::StatusOr<EraResult> ComputeEra(CommandRunner& runner,
                                     const EraRequest& req) {
  absl::StatusOr<std::unique_ptr<ScopedLock>> lock = LockFile(req.lock_path);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<EraTable> table = ReadEraTable(runner, req.era_dm_name);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::string> generation =
      LiveEraGeneration(runner, req.era_dm_name);
  if (!generation.ok()) return generation.status();
  absl::StatusOr<bool> stale =
      ReleaseStaleMetadataSnap(runner, req.era_dm_name, /*era=*/true);
  if (!stale.ok()) return stale.status();

  absl::StatusOr<std::string> cp =
      runner.Run({"dmsetup", "message", req.era_dm_name, "0", "checkpoint"});
  if (!cp.ok()) return cp.status();
  absl::StatusOr<uint64_t> era = CurrentEra(runner, req.era_dm_name);
  if (!era.ok()) return era.status();
  EraResult result;
  result.generation = *generation;
  if (!req.expected_generation.empty() &&
      *generation != req.expected_generation) {
    result.set = ChangedSet::Lost(
        Method::kEra, table->size_bytes,
        generation->empty()
            ? absl::StrCat("era device ", req.era_dm_name,
                           " carries no cbtd generation (not assembled by "
                           "`cbtctl era-stack`), so a rebuild cannot be "
                           "ruled out")
            : absl::StrCat("era stack ", req.era_dm_name,
                           " was rebuilt: its generation is ", *generation,
                           ", the last run's was ", req.expected_generation));
    return result;
  }
  if (*era < 1 || *era - 1 < req.since_era) {
    result.set = ChangedSet::Lost(
        Method::kEra, table->size_bytes,
        absl::StrCat("era device ", req.era_dm_name, " is at era ", *era,
                     ", before the last run's era ", req.since_era,
                     ": the era stack was rebuilt"));
    return result;
  }
  result.next_since_era = *era - 1;

  absl::StatusOr<std::unique_ptr<ScopedMetadataSnap>> snap =
      ScopedMetadataSnap::Reserve(runner, req.era_dm_name, /*era=*/true);
  if (!snap.ok()) return snap.status();
  absl::StatusOr<std::string> xml =
      runner.Run({"era_invalidate", "--metadata-snapshot", "--written-since",
                  absl::StrCat(req.since_era), req.metadata_path});
  absl::Status released = (*snap)->Release();
  if (!xml.ok()) return xml.status();
  if (!released.ok()) return released;
  absl::StatusOr<ExtentSet> blocks =
      ParseEraInvalidateXml(*xml, table->block_sectors);
  if (!blocks.ok()) return blocks.status();

  result.set.method = Method::kEra;
  result.set.generation =
      absl::StrCat("era:", req.era_dm_name, ":", req.since_era, "->", *era - 1);
  result.set.volume_size_bytes = table->size_bytes;
  result.set.granularity_bytes = table->block_sectors * 512;
  result.set.changed = blocks->Intersection(ExtentSet{{0, table->size_bytes}});
  return result;
}

}  // namespace cbtd::cbt
