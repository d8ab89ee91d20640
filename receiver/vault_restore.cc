#include "receiver/vault_restore.h"

#include "absl/strings/str_cat.h"
#include "receiver/index_stream.h"

namespace cbtd::receiver {

void VaultVersionSource::NoteEncrypted(std::string_view version,
                                       bool encrypted) {
  std::lock_guard l(mu_);
  encrypted_[std::string(version)] = encrypted;
}

absl::StatusOr<VersionIndex> VaultVersionSource::ReadIndex(
    std::string_view version) {
  auto idx = vault_.ReadIndex(volume_, version);
  if (idx.ok()) NoteEncrypted(version, idx->encrypted());
  return idx;
}

absl::StatusOr<std::unique_ptr<transport::IndexEntrySource>>
VaultVersionSource::OpenIndex(std::string_view version) {
  auto reader = vault_.OpenIndex(volume_, version);
  if (!reader.ok()) return reader.status();
  std::unique_ptr<transport::IndexEntrySource> source =
      AsEntrySource(*std::move(reader));
  NoteEncrypted(version, source->metadata().encrypted());
  return source;
}

absl::StatusOr<bool> VaultVersionSource::Encrypted(std::string_view version) {
  {
    std::lock_guard l(mu_);
    if (auto it = encrypted_.find(version); it != encrypted_.end()) {
      return it->second;
    }
  }
  // The metadata alone (its entries are checked by whoever reads them).
  auto meta = vault_.ListedIndexMetadata(volume_, version);
  if (!meta.ok()) return meta.status();
  NoteEncrypted(version, meta->encrypted());
  return meta->encrypted();
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
