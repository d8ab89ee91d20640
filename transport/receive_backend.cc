#include "transport/receive_backend.h"

namespace cbtd::transport {

VersionSummary SummaryOf(const IndexMetadata& index) {
  VersionSummary v;
  v.source_host = index.host;
  v.volume_id = index.volume;
  v.version_id = index.version_id;
  v.base_version_id = index.base_version_id;
  v.root_hash = index.root_hash;
  v.volume_size_bytes = index.volume_size_bytes;
  v.chunk_size_bytes = index.chunk_size_bytes;
  v.created_unix_ms = index.created_unix_ms;
  v.key_fingerprint = index.key_fingerprint;
  v.group = index.group;
  v.group_version_id = index.group_version_id;
  return v;
}

VersionIndex IndexWithoutEntries(const VersionSummary& summary) {
  VersionIndex index;
  index.host = summary.source_host;
  index.volume = summary.volume_id;
  index.version_id = summary.version_id;
  index.base_version_id = summary.base_version_id;
  index.volume_size_bytes = summary.volume_size_bytes;
  index.chunk_size_bytes = summary.chunk_size_bytes;
  index.created_unix_ms = summary.created_unix_ms;
  index.root_hash = summary.root_hash;
  index.key_fingerprint = summary.key_fingerprint;
  index.group = summary.group;
  index.group_version_id = summary.group_version_id;
  return index;
}

absl::StatusOr<std::unique_ptr<IndexEntrySource>> ReceiveBackend::OpenIndex(
    const std::string& source_host, const std::string& volume_id,
    const std::string& version_id) {
  absl::StatusOr<VersionIndex> index =
      GetIndex(source_host, volume_id, version_id);
  if (!index.ok()) return index.status();
  return SourceOf(*std::move(index));
}

}  // namespace cbtd::transport
