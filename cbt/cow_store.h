// Reader for the dm-snapshot persistent exception store (the `-cow` device
// of an LVM thick snapshot), layout as in drivers/md/dm-snap-persistent.c:
//
//   chunk 0:   header, little-endian u32 magic 0x70416e53 ("SnAp"),
//              u32 valid (0 = invalidated: overflowed or dropped),
//              u32 version (1), u32 chunk_size (sectors)
//   chunk 1:   metadata area 0: chunk_bytes/16 exceptions
//              { le64 old_chunk (origin), le64 new_chunk (COW) }
//   then exceptions_per_area data chunks, then area 1, and so on: area i
//   is at chunk 1 + i * (exceptions_per_area + 1).
//
// The table ends at the first exception with new_chunk == 0 (a full area
// continues in the next area). Every old_chunk is an origin chunk written
// since the snapshot was taken (or a write to the snapshot itself).
#ifndef CBTD_CBT_COW_STORE_H_
#define CBTD_CBT_COW_STORE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"
#include "cbt/extent_set.h"
#include "common/block_reader.h"

namespace cbtd::cbt {

inline constexpr uint32_t kCowMagic = 0x70416e53;
inline constexpr uint32_t kCowVersion = 1;

struct CowTable {
  uint64_t chunk_sectors = 0;
  uint64_t exceptions = 0;
  // Origin bytes covered by exceptions, clipped to origin_size_bytes.
  ExtentSet origin_bytes;
};

// Errors, all naming cow.name():
//  - FAILED_PRECONDITION: valid flag is 0 (snapshot invalidated, e.g.
//    overflowed) — tracking through this snapshot is lost.
//  - DATA_LOSS: wrong magic, unknown version, bad chunk size, truncated
//    table, an exception outside the origin or the COW device.
absl::StatusOr<CowTable> ReadCowTable(common::BlockReader& cow,
                                      uint64_t origin_size_bytes);

// The cow-table method: everything written to the origin since the base
// snapshot whose COW store is `cow_path` (e.g. /dev/mapper/vg-snap-cow).
// Lost (in the result, with the reason) when the COW device is missing,
// invalidated (overflowed) or corrupt; errors only for other I/O failures.
// Read after the new snapshot is taken: later writes only add exceptions.
absl::StatusOr<ChangedSet> ComputeCowTable(const std::string& cow_path,
                                           uint64_t origin_size_bytes);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_COW_STORE_H_
