#include "receiver/verify.h"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "transport/chunk_cipher.h"
#include "transport/sealed_chunk.h"
#include "transport/stream_codec.h"

namespace cbtd::receiver {

namespace {

using VersionList = std::vector<std::pair<VolumeName, std::string>>;

// Verifies `versions`, all of one tenant, into `report`.
absl::Status VerifyTenant(Vault& vault, const std::string& tenant,
                          const VersionList& versions, const VerifyScope& scope,
                          VerifyReport& report) {
  // Which versions reference which chunk: each chunk is read once however
  // many versions share it.
  std::unordered_map<ChunkHash, std::vector<size_t>,
                     transport::ChunkHashStdHash>
      users;
  std::map<size_t, std::string> bad_index;  // version slot -> reason
  // The tenant's key (one per tenant, receive_session.h), and whether the
  // key given is it: then sealed chunks are opened and fully checked.
  std::string tenant_key;
  for (size_t slot = 0; slot < versions.size(); ++slot) {
    auto idx = vault.ReadIndex(versions[slot].first, versions[slot].second);
    if (!scope.version.empty() && (absl::IsNotFound(idx.status()) ||
                                   absl::IsInvalidArgument(idx.status()))) {
      return idx.status();  // the version named does not exist
    }
    // Pruned between the listing and the read: not a version any more.
    if (absl::IsNotFound(idx.status())) continue;
    if (!idx.ok()) {
      bad_index[slot] = std::string(idx.status().message());
      continue;
    }
    ++report.versions_checked;
    if (idx->encrypted()) tenant_key = idx->key_fingerprint;
    if (scope.volume && idx->encrypted() && scope.key &&
        scope.key->fingerprint() != idx->key_fingerprint) {
      return restore::CheckRestoreKey(*idx, scope.key);
    }
    for (const ChunkHash& h : idx->entries) {
      if (transport::IsZeroEntry(h)) continue;
      auto& u = users[h];
      if (u.empty() || u.back() != slot) u.push_back(slot);
    }
  }
  report.versions_checked += bad_index.size();

  std::vector<const std::pair<const ChunkHash, std::vector<size_t>>*> work;
  for (const auto& kv : users) work.push_back(&kv);
  std::atomic<size_t> next{0};
  std::mutex mu;
  // Damaged chunk -> why; and the versions that use at least one.
  std::unordered_map<ChunkHash, absl::Status, transport::ChunkHashStdHash>
      bad_chunks;
  std::set<size_t> hurt;  // version slots
  const bool open_sealed = scope.key && !tenant_key.empty() &&
                           scope.key->fingerprint() == tenant_key;
  std::atomic<uint64_t> checksum_only{0};
  auto run = [&] {
    // One cipher per thread: ChunkCipher is not thread-safe.
    std::optional<transport::ChunkCipher> cipher;
    absl::Status cipher_status;
    if (open_sealed) {
      auto c = transport::ChunkCipher::Create(*scope.key);
      if (c.ok())
        cipher.emplace(*std::move(c));
      else
        cipher_status = c.status();
    }
    for (size_t k; (k = next++) < work.size();) {
      const ChunkHash& id = work[k]->first;
      auto data = vault.ReadStoredChunk(tenant, id);
      absl::Status bad = data.status();
      if (data.ok() && data->sealed != !tenant_key.empty()) {
        bad = absl::DataLossError(
            absl::StrCat("chunk ", id.ToHex(), " is stored ",
                         data->sealed ? "sealed" : "in plaintext",
                         " in tenant '", tenant, "', whose versions are ",
                         tenant_key.empty() ? "plaintext" : "encrypted"));
      } else if (data.ok() && data->sealed && !open_sealed) {
        ++checksum_only;
      } else if (data.ok() && data->sealed) {
        bad = cipher_status;
        if (cipher) {
          bad = transport::OpenChunkPayload(*cipher, id, data->data,
                                            transport::kMaxChunkBytes,
                                            absl::StrCat("chunk ", id.ToHex()))
                    .status();
        }
      }
      if (bad.ok()) continue;
      std::lock_guard l(mu);
      bad_chunks.emplace(id, bad);
      hurt.insert(work[k]->second.begin(), work[k]->second.end());
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < std::max(1, scope.threads); ++t) ts.emplace_back(run);
  run();
  for (auto& t : ts) t.join();
  report.chunks_checked += work.size();
  report.chunks_checksum_only += checksum_only;

  // Every position of every hurt version: damage is rare, so reading those
  // indexes again is cheaper than keeping every index in memory.
  std::map<size_t, DamagedVersion> out;
  for (const auto& [slot, reason] : bad_index) {
    out[slot] = {versions[slot].first, versions[slot].second, reason, {}};
  }
  for (size_t slot : hurt) {
    DamagedVersion d{versions[slot].first, versions[slot].second, "", {}};
    auto idx = vault.ReadIndex(d.volume, d.version);
    if (!idx.ok()) {
      d.reason = std::string(idx.status().message());
    } else {
      for (uint64_t i = 0; i < idx->entries.size(); ++i) {
        auto it = bad_chunks.find(idx->entries[i]);
        if (it == bad_chunks.end()) continue;
        d.chunks.push_back({i, it->first, absl::IsNotFound(it->second),
                            std::string(it->second.message())});
      }
      if (!d.chunks.empty()) d.reason = d.chunks.front().reason;
    }
    out[slot] = std::move(d);
  }
  for (auto& [slot, d] : out) report.damaged.push_back(std::move(d));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifyReport> VerifyVault(Vault& vault,
                                         const VerifyScope& scope) {
  VerifyReport report;
  VersionList versions;
  if (scope.volume) {
    std::vector<std::string> ids;
    if (!scope.version.empty()) {
      ids.push_back(scope.version);
    } else {
      auto listed = vault.ListVersions(*scope.volume);
      if (!listed.ok()) return listed.status();
      if (listed->empty()) {
        return absl::NotFoundError(absl::StrCat(
            scope.volume->host, "/", scope.volume->volume,
            " not found: the vault holds no version of it (unknown host or "
            "volume)"));
      }
      ids = *std::move(listed);
    }
    for (auto& id : ids) versions.emplace_back(*scope.volume, std::move(id));
  } else {
    if (!scope.version.empty()) {
      return absl::InvalidArgumentError("verify: a version needs its volume");
    }
    auto all = vault.ListVolumes();
    if (!all.ok()) return all.status();
    for (const VolumeName& v : *all) {
      auto listed = vault.ListVersions(v);
      if (!listed.ok()) return listed.status();
      for (auto& id : *listed) versions.emplace_back(v, std::move(id));
    }
  }

  // One tenant at a time: chunks never cross tenants, and the chunk map
  // below then holds one tenant's chunks, not the vault's.
  std::map<std::string, VersionList> by_tenant;
  for (auto& v : versions) {
    by_tenant[vault.TenantOf(v.first.host)].push_back(std::move(v));
  }
  for (const auto& [tenant, list] : by_tenant) {
    if (auto s = VerifyTenant(vault, tenant, list, scope, report); !s.ok()) {
      return s;
    }
  }
  return report;
}

}  // namespace cbtd::receiver
