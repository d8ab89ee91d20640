#include "receiver/verify.h"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "receiver/chunk_id_set.h"
#include "transport/chunk_cipher.h"
#include "transport/sealed_chunk.h"
#include "transport/stream_codec.h"

namespace cbtd::receiver {

namespace {

using VersionList = std::vector<std::pair<VolumeName, std::string>>;

// Verifies `versions`, all of one tenant, into `report`: reads their
// indexes into a set of chunk ids on disk (Collect), checks each distinct
// chunk once (CheckChunks), then names every damaged position (Report).
// Memory does not grow with the versions: the set is a temporary SQLite
// database (ChunkIdSet), and damage is attributed to versions by reading
// their indexes again, which only happens when there is damage.
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
    auto ids = ChunkIdSet::Create();
    if (!ids.ok()) return ids.status();
    ids_ = *std::move(ids);
    if (auto s = Collect(); !s.ok()) return s;
    if (auto s = CheckChunks(); !s.ok()) return s;
    Report();
    return absl::OkStatus();
  }

 private:
  // Every chunk the versions reference, into ids_: each is read once
  // however many versions share it.
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
      absl::Status s = reader.ok() ? AddIds(**reader, slot) : reader.status();
      if (!fatal_.ok()) return fatal_;  // the set of ids failed
      if (!s.ok()) {
        // Ids read before the damage showed stay in the set: checking a
        // chunk no version names costs a read, and is reported nowhere.
        if (absl::IsNotFound(s)) continue;  // pruned while being read
        bad_index_[slot] = std::string(s.message());
        continue;
      }
      good_.insert(slot);
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

  // The index of the version before `slot` if it is of the same volume
  // and geometry and was read whole: the entries the two share at the same
  // positions are in the set already (versions of a volume are listed in
  // order, so this is the previous backup, and the cost of Collect
  // follows what changed between backups).
  std::unique_ptr<IndexReader> Previous(size_t slot,
                                        const IndexMetadata& meta) {
    if (slot == 0 || !good_.contains(slot - 1) ||
        !(versions_[slot - 1].first == versions_[slot].first)) {
      return nullptr;
    }
    auto prev =
        vault_.OpenIndex(versions_[slot - 1].first, versions_[slot - 1].second);
    if (!prev.ok() ||
        (*prev)->metadata().chunk_size_bytes != meta.chunk_size_bytes ||
        (*prev)->metadata().volume_size_bytes != meta.volume_size_bytes) {
      return nullptr;
    }
    return *std::move(prev);
  }

  // The next `n` entries of `prev` into `out`; false if it cannot give
  // them (then it is not used any further).
  static bool ReadSame(IndexReader& prev, size_t n,
                       std::vector<ChunkHash>& out) {
    out.clear();
    while (out.size() < n) {
      auto got = prev.Next(n - out.size());
      if (!got.ok() || got->empty()) return false;
      out.insert(out.end(), got->begin(), got->end());
    }
    return true;
  }

  // Adds the chunks of the index to ids_, then checks the whole index
  // (IndexReader::Finish).
  absl::Status AddIds(IndexReader& reader, size_t slot) {
    std::unique_ptr<IndexReader> prev = Previous(slot, reader.metadata());
    std::vector<ChunkHash> before, fresh;
    for (;;) {
      auto block = reader.Next();
      if (!block.ok()) return block.status();
      if (block->empty()) break;
      if (prev && !ReadSame(*prev, block->size(), before)) prev.reset();
      fresh.clear();
      for (size_t k = 0; k < block->size(); ++k) {
        const ChunkHash& h = (*block)[k];
        if (transport::IsZeroEntry(h) || (prev && before[k] == h)) continue;
        fresh.push_back(h);
      }
      if (auto s = ids_->Add(fresh); !s.ok()) return fatal_ = s;
    }
    return reader.Finish();
  }

  // Checks every chunk of ids_, a round of kCheckRound at a time, each
  // round with scope_.threads workers.
  absl::Status CheckChunks() {
    open_sealed_ = scope_.key && !tenant_key_.empty() &&
                   scope_.key->fingerprint() == tenant_key_;
    std::optional<ChunkHash> after;
    for (;;) {
      auto round = ids_->Next(after, kCheckRound);
      if (!round.ok()) return round.status();
      if (round->empty()) break;
      after = round->back();
      work_ = *std::move(round);
      next_ = 0;
      std::vector<std::thread> ts;
      for (int t = 1; t < std::max(1, scope_.threads); ++t) {
        ts.emplace_back([this] { Worker(); });
      }
      Worker();
      for (auto& t : ts) t.join();
      report_.chunks_checked += work_.size();
    }
    report_.chunks_checksum_only += checksum_only_;
    return absl::OkStatus();
  }
  static constexpr size_t kCheckRound = 4096;

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
      const ChunkHash& id = work_[k];
      absl::Status bad =
          CheckOne(id, cipher ? &*cipher : nullptr, cipher_status);
      if (bad.ok()) continue;
      std::lock_guard l(mu_);
      bad_chunks_.emplace(id, bad);
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

  // Every position of every version a damaged chunk hurts: damage is
  // rare, so reading the indexes again is cheaper than keeping them.
  void Report() {
    std::map<size_t, DamagedVersion> out;
    for (const auto& [slot, reason] : bad_index_) {
      out[slot] = {versions_[slot].first, versions_[slot].second, reason, {}};
    }
    for (size_t slot : good_) {
      if (bad_chunks_.empty()) break;
      DamagedVersion d{versions_[slot].first, versions_[slot].second, "", {}};
      if (absl::Status s = FindDamaged(d); !s.ok()) {
        d.chunks.clear();
        d.reason = std::string(s.message());
      } else if (d.chunks.empty()) {
        continue;  // not hurt
      } else {
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

  std::unique_ptr<ChunkIdSet> ids_;
  std::set<size_t> good_;  // version slots whose index was read whole
  absl::Status fatal_;     // the set failed: verify stops
  std::map<size_t, std::string> bad_index_;  // version slot -> reason
  // The tenant's key (one per tenant, receive_session.h), and whether the
  // key given is it: then sealed chunks are opened and fully checked.
  std::string tenant_key_;
  bool open_sealed_ = false;
  std::vector<ChunkHash> work_;  // the round of chunks being checked
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> checksum_only_{0};
  std::mutex mu_;
  // Damaged chunk -> why.
  std::unordered_map<ChunkHash, absl::Status, transport::ChunkHashStdHash>
      bad_chunks_;
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
