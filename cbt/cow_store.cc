#include "cbt/cow_store.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/byte_order.h"

namespace cbtd::cbt {
namespace {

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(common::GetLe(p, 4));
}

}  // namespace

absl::StatusOr<CowTable> ReadCowTable(common::BlockReader& cow,
                                      uint64_t origin_size_bytes) {
  const std::string& dev = cow.name();
  uint8_t header[16];
  if (cow.SizeBytes() < sizeof(header)) {
    return absl::DataLossError(
        absl::StrCat(dev, ": COW store truncated: no header"));
  }
  absl::Status st = cow.ReadAt(0, header);
  if (!st.ok()) return st;
  const uint32_t magic = Le32(header);
  const uint32_t valid = Le32(header + 4);
  const uint32_t version = Le32(header + 8);
  const uint32_t chunk_sectors = Le32(header + 12);
  if (magic != kCowMagic) {
    return absl::DataLossError(absl::StrCat(
        dev, ": not a dm-snapshot COW store (magic 0x", absl::Hex(magic),
        ", expected 0x70416e53); is this the snapshot's -cow device?"));
  }
  if (valid == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        dev,
        ": snapshot is invalid (overflowed or dropped by the kernel); "
        "its exception table no longer covers every change"));
  }
  if (valid != 1) {
    return absl::DataLossError(
        absl::StrCat(dev, ": COW header valid flag is ", valid, ", not 0/1"));
  }
  if (version != kCowVersion) {
    return absl::DataLossError(absl::StrCat(dev, ": COW store version ",
                                            version, " (only 1 is known)"));
  }
  // The kernel requires a power of two, at least one page (8 sectors).
  if (chunk_sectors < 8 || (chunk_sectors & (chunk_sectors - 1)) != 0 ||
      chunk_sectors > (1u << 21)) {
    return absl::DataLossError(absl::StrCat(
        dev, ": COW chunk size ", chunk_sectors, " sectors is not valid"));
  }
  const uint64_t chunk_bytes = uint64_t{chunk_sectors} * 512;
  const uint64_t per_area = chunk_bytes / 16;
  const uint64_t cow_chunks = cow.SizeBytes() / chunk_bytes;
  const uint64_t origin_chunks =
      (origin_size_bytes + chunk_bytes - 1) / chunk_bytes;

  CowTable out;
  out.chunk_sectors = chunk_sectors;
  std::vector<uint8_t> area(chunk_bytes);
  for (uint64_t a = 0;; ++a) {
    const uint64_t area_chunk = 1 + a * (per_area + 1);
    if (area_chunk >= cow_chunks) {
      // The previous area was full and the device has no room for another:
      // the table ends with the device.
      if (a == 0) {
        return absl::DataLossError(absl::StrCat(
            dev, ": COW store truncated: no room for the first metadata area"));
      }
      break;
    }
    st = cow.ReadAt(area_chunk * chunk_bytes, area);
    if (!st.ok()) {
      return absl::DataLossError(absl::StrCat(
          dev, ": COW store truncated or unreadable in metadata area ", a, ": ",
          st.message()));
    }
    bool full = true;
    for (uint64_t i = 0; i < per_area; ++i) {
      const uint64_t old_chunk = common::GetLe(area.data() + i * 16, 8);
      const uint64_t new_chunk = common::GetLe(area.data() + i * 16 + 8, 8);
      if (new_chunk == 0) {
        full = false;
        break;
      }
      if (old_chunk >= origin_chunks || new_chunk >= cow_chunks) {
        return absl::DataLossError(
            absl::StrCat(dev, ": corrupt COW exception ", out.exceptions,
                         " (origin chunk ", old_chunk, " of ", origin_chunks,
                         ", COW chunk ", new_chunk, " of ", cow_chunks, ")"));
      }
      const uint64_t begin = old_chunk * chunk_bytes;
      out.origin_bytes.Add(
          Extent{begin, std::min(chunk_bytes, origin_size_bytes - begin)});
      ++out.exceptions;
    }
    if (!full) break;
  }
  return out;
}

absl::StatusOr<ChangedSet> ComputeCowTable(const std::string& cow_path,
                                           uint64_t origin_size_bytes) {
  absl::StatusOr<std::unique_ptr<common::BlockReader>> cow =
      common::OpenBlockReader(cow_path);
  if (absl::IsNotFound(cow.status())) {
    return ChangedSet::Lost(
        Method::kCowTable, origin_size_bytes,
        absl::StrCat("base snapshot's COW device ", cow_path,
                     " is missing (snapshot removed or not active)"));
  }
  if (!cow.ok()) return cow.status();
  absl::StatusOr<CowTable> table = ReadCowTable(**cow, origin_size_bytes);
  if (absl::IsFailedPrecondition(table.status()) ||
      absl::IsDataLoss(table.status())) {
    return ChangedSet::Lost(Method::kCowTable, origin_size_bytes,
                            std::string(table.status().message()));
  }
  if (!table.ok()) return table.status();
  ChangedSet set;
  set.method = Method::kCowTable;
  set.generation = absl::StrCat("cow:", cow_path, ":", table->exceptions);
  set.volume_size_bytes = origin_size_bytes;
  set.granularity_bytes = table->chunk_sectors * 512;
  set.changed = std::move(table->origin_bytes);
  return set;
}

}  // namespace cbtd::cbt
