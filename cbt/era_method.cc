#include "cbt/era_method.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/device_mapper.h"
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

// The live table of era device NAME; NOT_FOUND says how to bring it back.
absl::StatusOr<DmTable> EraTableOf(DeviceMapper& dm, const std::string& name) {
  absl::StatusOr<DmTable> table = dm.Table(name);
  if (absl::IsNotFound(table.status())) {
    return absl::NotFoundError(absl::StrCat(
        "era device ", name, " is not live (", table.status().message(),
        "); assemble it with `cbtctl era-stack assemble ", name, "`"));
  }
  return table;
}

absl::Status NotEra(const std::string& name, const DmTable& table) {
  return absl::FailedPreconditionError(absl::StrCat(
      name, " is not a dm-era device (table: '", common::FormatDmTable(table),
      "'); put the volume under an era stack first"));
}

// "0 <sectors> era <meta maj:min> <origin maj:min> <block sectors>"
absl::StatusOr<EraTable> ReadEraTable(DeviceMapper& dm,
                                      const std::string& name) {
  absl::StatusOr<DmTable> table = EraTableOf(dm, name);
  if (!table.ok()) return table.status();
  absl::StatusOr<DmTarget> era = SingleTarget(*table, "era", name);
  if (!era.ok()) return NotEra(name, *table);
  absl::StatusOr<std::string> bs = ParamField(*era, 2, name);
  EraTable t;
  if (!bs.ok() || !ParseDecimalUint64(*bs, &t.block_sectors) ||
      t.block_sectors == 0) {
    return NotEra(name, *table);
  }
  t.size_bytes = era->length_sectors * 512;
  return t;
}

// "<md block sectors> <used>/<total> <current era> <held root>"
absl::StatusOr<uint64_t> CurrentEra(DeviceMapper& dm, const std::string& name) {
  absl::StatusOr<DmTable> status = dm.Status(name);
  if (!status.ok()) return status.status();
  absl::StatusOr<DmTarget> target = SingleTarget(*status, "era", name);
  if (!target.ok()) return target.status();
  absl::StatusOr<std::string> f = ParamField(*target, 2, name);
  if (!f.ok()) return f.status();
  uint64_t era = 0;
  if (!ParseDecimalUint64(*f, &era)) {
    return absl::InvalidArgumentError(
        absl::StrCat("status of era device ", name, ": era '", *f,
                     "' is not a number (status '", target->params, "')"));
  }
  return era;
}

}  // namespace

absl::StatusOr<EraResult> ComputeEra(CommandRunner& runner, DeviceMapper& dm,
                                     const EraRequest& req) {
  absl::StatusOr<std::unique_ptr<ScopedLock>> lock = LockFile(req.lock_path);
  if (!lock.ok()) return lock.status();
  absl::StatusOr<EraTable> table = ReadEraTable(dm, req.era_dm_name);
  if (!table.ok()) return table.status();
  absl::StatusOr<std::string> generation =
      LiveEraGeneration(dm, req.era_dm_name);
  if (!generation.ok()) return generation.status();
  absl::StatusOr<bool> stale =
      ReleaseStaleMetadataSnap(dm, req.era_dm_name, /*era=*/true);
  if (!stale.ok()) return stale.status();

  absl::StatusOr<std::string> cp = dm.Message(req.era_dm_name, 0, "checkpoint");
  if (!cp.ok()) return cp.status();
  absl::StatusOr<uint64_t> era = CurrentEra(dm, req.era_dm_name);
  if (!era.ok()) return era.status();
  EraResult result;
  result.generation = *generation;
  // Every write after the checkpoint is in era >= E-1: the next run's
  // anchor, also when this run's set is lost.
  result.next_since_era = *era >= 1 ? *era - 1 : 0;
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

  absl::StatusOr<std::unique_ptr<ScopedMetadataSnap>> snap =
      ScopedMetadataSnap::Reserve(dm, req.era_dm_name, /*era=*/true);
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
