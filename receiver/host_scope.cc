#include "receiver/host_scope.h"

#include "transport/stream_index.h"

namespace cbtd::receiver {

absl::StatusOr<bool> HostScope::Contains(const ChunkHash& hash) {
  if (hashes_.contains(hash)) return true;
  if (loaded_) return false;
  if (absl::Status s = Load(); !s.ok()) return s;
  return hashes_.contains(hash);
}

absl::Status HostScope::Load() {
  auto versions = vault_.ListHostVersions(host_);
  if (!versions.ok()) return versions.status();
  // Versions of one volume differ in few positions: an entry equal to the
  // previous version's at the same position is already in the set.
  std::vector<ChunkHash> previous;
  VolumeName previous_volume;
  for (const auto& [volume, id] : *versions) {
    auto index = vault_.ReadIndex(volume, id);
    // Pruned since the listing, damaged, or of a format this build does not
    // read: its chunks are not vouched for.
    if (absl::IsNotFound(index.status()) || absl::IsDataLoss(index.status()) ||
        absl::IsFailedPrecondition(index.status())) {
      continue;
    }
    if (!index.ok()) return index.status();
    ++indexes_read_;
    const std::vector<ChunkHash>& entries = index->entries;
    if (volume != previous_volume) {
      previous.clear();
      hashes_.reserve(hashes_.size() + entries.size());  // no rehash chain
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i < previous.size() && previous[i] == entries[i]) continue;
      if (!transport::IsZeroEntry(entries[i])) hashes_.insert(entries[i]);
    }
    previous = std::move(index->entries);
    previous_volume = volume;
  }
  loaded_ = true;
  return absl::OkStatus();
}

}  // namespace cbtd::receiver
