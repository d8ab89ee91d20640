#include "receiver/vault_restore.h"

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {

absl::StatusOr<VersionIndex> VaultVersionSource::ReadIndex(
    std::string_view version) {
  auto idx = vault_.ReadIndex(volume_, version);
  if (idx.ok()) {
    std::lock_guard l(mu_);
    encrypted_[std::string(version)] = idx->encrypted();
  }
  return idx;
}

absl::StatusOr<bool> VaultVersionSource::Encrypted(std::string_view version) {
  {
    std::lock_guard l(mu_);
    if (auto it = encrypted_.find(version); it != encrypted_.end()) {
      return it->second;
    }
  }
  auto idx = ReadIndex(version);
  if (!idx.ok()) return idx.status();
  return idx->encrypted();
}

absl::StatusOr<std::string> VaultVersionSource::Tenant() {
  {
    std::lock_guard l(mu_);
    if (tenant_.has_value()) return *tenant_;
  }
  auto tenant = vault_.TenantOf(volume_.host);
  if (!tenant.ok()) return tenant.status();
  std::lock_guard l(mu_);
  tenant_ = *tenant;
  return tenant;
}

absl::StatusOr<std::vector<std::string>> VaultVersionSource::ReadChunks(
    std::string_view version, std::span<const ChunkHash> hashes) {
  auto encrypted = Encrypted(version);
  if (!encrypted.ok()) return encrypted.status();
  auto tenant = Tenant();
  if (!tenant.ok()) return tenant.status();
  // Checks each record checksum and, for a plaintext chunk, the content.
  auto stored = vault_.ReadStoredChunks(*tenant, hashes);
  if (!stored.ok()) return stored.status();
  std::vector<std::string> out;
  out.reserve(hashes.size());
  for (size_t k = 0; k < hashes.size(); ++k) {
    StoredChunk& data = (*stored)[k];
    // A sealed record where plaintext is expected would skip the content
    // check, and a plaintext one where sealed is expected cannot open.
    if (data.sealed != *encrypted) {
      return absl::DataLossError(absl::StrCat(
          "chunk ", hashes[k].ToHex(), " is stored ",
          data.sealed ? "sealed" : "in plaintext", " but version ",
          volume_.host, "/", volume_.volume, "@", std::string(version), " is ",
          *encrypted ? "encrypted" : "not encrypted"));
    }
    out.push_back(std::move(data.data));
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
