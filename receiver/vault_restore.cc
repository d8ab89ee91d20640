#include "receiver/vault_restore.h"

namespace cbtd::receiver {

absl::StatusOr<VersionIndex> VaultVersionSource::ReadIndex(
    std::string_view version) {
  return vault_.ReadIndex(volume_, version);
}

absl::StatusOr<std::vector<std::string>> VaultVersionSource::ReadChunks(
    std::string_view /*version*/, std::span<const ChunkHash> hashes) {
  std::vector<std::string> out;
  out.reserve(hashes.size());
  for (const ChunkHash& h : hashes) {
    auto data = vault_.ReadChunk(vault_.TenantOf(volume_.host),
                                 h);  // checks checksum and content hash
    if (!data.ok()) return data.status();
    out.push_back(std::move(*data));
  }
  return out;
}

absl::StatusOr<restore::RestoreStats> RestoreVersion(
    Vault& vault, const VolumeName& vol, std::string_view version,
    restore::RestoreTarget& target, const restore::RestoreOptions& options) {
  VaultVersionSource source(vault, vol);
  return restore::RestoreFromSource(source, version, target, options);
}

}  // namespace cbtd::receiver
