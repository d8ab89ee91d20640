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

// Verifies `versions`, all of one tenant, into `report`: reads their
// indexes (Collect), checks each distinct chunk once (CheckChunks), then
// names every damaged position (Report).
class TenantVerifier {
 public:
  TenantVerifier(Vault& vault, const std::string& tenant,
                 const VersionList& versions, const VerifyScope& scope,
                 VerifyReport& report)
      : vault_(vault),
        tenant_(tenant),
        versions_(versions),
        scope_(scope),
        report_(report) {}

  absl::Status Run() {
    if (auto s = Collect(); !s.ok()) return s;
    CheckChunks();
    Report();
    return absl::OkStatus();
  }

 private:
  // Which versions reference which chunk: each chunk is read once however
  // many versions share it. Indexes are streamed (bounded memory per
  // index); what grows is users_, one entry per distinct chunk.
  absl::Status Collect() {
    for (size_t slot = 0; slot < versions_.size(); ++slot) {
      auto reader =
          vault_.OpenIndex(versions_[slot].first, versions_[slot].second);
      if (!scope_.version.empty() &&
          (absl::IsNotFound(reader.status()) ||
           absl::IsInvalidArgument(reader.status()))) {
        return reader.status();  // the version named does not exist
      }
      // Pruned between the listing and the read: not a version any more.
      if (absl::IsNotFound(reader.status())) continue;
      absl::Status s = reader.ok() ? AddUsers(**reader, slot) : reader.status();
      if (!s.ok()) {
        // Entries read before the damage showed are not to be trusted.
        DropUsers(slot);
        if (absl::IsNotFound(s)) continue;  // pruned while being read
        bad_index_[slot] = std::string(s.message());
        continue;
      }
      const IndexMetadata& meta = (*reader)->metadata();  // verified now
      ++report_.versions_checked;
      if (meta.encrypted()) tenant_key_ = meta.key_fingerprint;
      if (scope_.volume && meta.encrypted() && scope_.key &&
          scope_.key->fingerprint() != meta.key_fingerprint) {
        return restore::CheckRestoreKey(meta, scope_.key);
      }
    }
    report_.versions_checked += bad_index_.size();
    return absl::OkStatus();
  }

  // Records `slot` as a user of every chunk of the index, then checks the
  // whole index (IndexReader::Finish).
  absl::Status AddUsers(IndexReader& reader, size_t slot) {
    for (;;) {
      auto block = reader.Next();
      if (!block.ok()) return block.status();
      if (block->empty()) break;
      for (const ChunkHash& h : *block) {
        if (transport::IsZeroEntry(h)) continue;
        auto& u = users_[h];
        if (u.empty() || u.back() != slot) u.push_back(slot);
      }
    }
    return reader.Finish();
  }

  // Undoes AddUsers of `slot`, the newest slot (damage is rare: a pass
  // over the map then costs less than holding every index).
  void DropUsers(size_t slot) {
    for (auto it = users_.begin(); it != users_.end();) {
      std::vector<size_t>& u = it->second;
      if (!u.empty() && u.back() == slot) u.pop_back();
      it = u.empty() ? users_.erase(it) : std::next(it);
    }
  }

  // With scope_.threads workers.
  void CheckChunks() {
    for (const auto& kv : users_) work_.push_back(&kv);
    open_sealed_ = scope_.key && !tenant_key_.empty() &&
                   scope_.key->fingerprint() == tenant_key_;
    std::vector<std::thread> ts;
    for (int t = 1; t < std::max(1, scope_.threads); ++t) {
      ts.emplace_back([this] { Worker(); });
    }
    Worker();
    for (auto& t : ts) t.join();
    report_.chunks_checked += work_.size();
    report_.chunks_checksum_only += checksum_only_;
  }

  void Worker() {
    // One cipher per thread: ChunkCipher is not thread-safe.
    std::optional<transport::ChunkCipher> cipher;
    absl::Status cipher_status;
    if (open_sealed_) {
      auto c = transport::ChunkCipher::Create(*scope_.key);
      if (c.ok()) {
        cipher.emplace(*std::move(c));
      } else {
        cipher_status = c.status();
      }
    }
    for (size_t k; (k = next_++) < work_.size();) {
      const ChunkHash& id = work_[k]->first;
      absl::Status bad =
          CheckOne(id, cipher ? &*cipher : nullptr, cipher_status);
      if (bad.ok()) continue;
      std::lock_guard l(mu_);
      bad_chunks_.emplace(id, bad);
      hurt_.insert(work_[k]->second.begin(), work_[k]->second.end());
    }
  }

  // The stored record's checksum; a sealed chunk opened with the key when
  // there is one (its keyed id checked), a plaintext one by its SHA-256.
  absl::Status CheckOne(const ChunkHash& id, transport::ChunkCipher* cipher,
                        const absl::Status& cipher_status) {
    auto data = vault_.ReadStoredChunk(tenant_, id);
    if (!data.ok()) return data.status();
    if (data->sealed != !tenant_key_.empty()) {
      return absl::DataLossError(
          absl::StrCat("chunk ", id.ToHex(), " is stored ",
                       data->sealed ? "sealed" : "in plaintext", " in tenant '",
                       tenant_, "', whose versions are ",
                       tenant_key_.empty() ? "plaintext" : "encrypted"));
    }
    if (!data->sealed) return absl::OkStatus();
    if (!open_sealed_) {
      ++checksum_only_;
      return absl::OkStatus();
    }
    if (cipher == nullptr) return cipher_status;
    return transport::OpenChunkPayload(*cipher, id, data->data,
                                       transport::kMaxChunkBytes,
                                       absl::StrCat("chunk ", id.ToHex()))
        .status();
  }

  // Every position of every hurt version: damage is rare, so reading those
  // indexes again is cheaper than keeping every index in memory.
  void Report() {
    std::map<size_t, DamagedVersion> out;
    for (const auto& [slot, reason] : bad_index_) {
      out[slot] = {versions_[slot].first, versions_[slot].second, reason, {}};
    }
    for (size_t slot : hurt_) {
      DamagedVersion d{versions_[slot].first, versions_[slot].second, "", {}};
      if (absl::Status s = FindDamaged(d); !s.ok()) {
        d.chunks.clear();
        d.reason = std::string(s.message());
      } else if (!d.chunks.empty()) {
        d.reason = d.chunks.front().reason;
      }
      out[slot] = std::move(d);
    }
    for (auto& [slot, d] : out) report_.damaged.push_back(std::move(d));
  }

  // Every position of `d`'s version whose chunk is damaged, streamed.
  absl::Status FindDamaged(DamagedVersion& d) {
    auto reader = vault_.OpenIndex(d.volume, d.version);
    if (!reader.ok()) return reader.status();
    for (uint64_t i = 0;;) {
      auto block = (*reader)->Next();
      if (!block.ok()) return block.status();
      if (block->empty()) break;
      for (const ChunkHash& h : *block) {
        auto it = bad_chunks_.find(h);
        if (it != bad_chunks_.end()) {
          d.chunks.push_back({i, it->first, absl::IsNotFound(it->second),
                              std::string(it->second.message())});
        }
        ++i;
      }
    }
    return (*reader)->Finish();
  }

  Vault& vault_;
  const std::string& tenant_;
  const VersionList& versions_;
  const VerifyScope& scope_;
  VerifyReport& report_;

  std::unordered_map<ChunkHash, std::vector<size_t>,
                     transport::ChunkHashStdHash>
      users_;
  std::map<size_t, std::string> bad_index_;  // version slot -> reason
  // The tenant's key (one per tenant, receive_session.h), and whether the
  // key given is it: then sealed chunks are opened and fully checked.
  std::string tenant_key_;
  bool open_sealed_ = false;
  std::vector<const std::pair<const ChunkHash, std::vector<size_t>>*> work_;
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> checksum_only_{0};
  std::mutex mu_;
  // Damaged chunk -> why; and the versions that use at least one.
  std::unordered_map<ChunkHash, absl::Status, transport::ChunkHashStdHash>
      bad_chunks_;
  std::set<size_t> hurt_;  // version slots
};

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
    auto tenant = vault.TenantOf(v.first.host);
    if (!tenant.ok()) return tenant.status();
    by_tenant[*tenant].push_back(std::move(v));
  }
  for (const auto& [tenant, list] : by_tenant) {
    if (auto s = TenantVerifier(vault, tenant, list, scope, report).Run();
        !s.ok()) {
      return s;
    }
  }
  return report;
}

}  // namespace cbtd::receiver
