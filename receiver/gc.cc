#include "receiver/gc.h"

#include <xxhash.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "common/byte_order.h"
#include "receiver/pack.h"
#include "receiver/receive_session.h"

namespace cbtd::receiver {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using VersionList = std::vector<std::pair<VolumeName, std::string>>;

// Every version of the vault, grouped by tenant.
absl::StatusOr<std::map<std::string, VersionList>> VersionsByTenant(
    Vault& vault) {
  std::map<std::string, VersionList> out;
  auto volumes = vault.ListVolumes();
  if (!volumes.ok()) return volumes.status();
  for (const VolumeName& vol : *volumes) {
    // A host whose tenant is unknown stops GC before it deletes anything:
    // its versions could reference any tenant's chunks.
    auto tenant = vault.TenantOf(vol.host);
    if (!tenant.ok()) return tenant.status();
    auto ids = vault.ListVersions(vol);
    if (!ids.ok()) return ids.status();
    for (std::string& id : *ids) out[*tenant].emplace_back(vol, std::move(id));
  }
  return out;
}

// Streams a version's index for the mark, block by block into `mark`,
// then checks the whole object. Returns false if the version was pruned
// between the listing and the read (NOT_FOUND: a deleted index protects
// nothing; receives cannot publish while GC holds the lock, so no index
// appears unseen). Any other error stops GC before it deletes anything.
// Marking from entries not yet verified is safe for that reason: a mark
// only keeps chunks, and a damaged index is found by Finish before the
// sweep.
absl::StatusOr<bool> MarkIndex(
    Vault& vault, const VolumeName& vol, const std::string& id,
    const std::function<absl::Status(std::span<const ChunkHash>)>& mark) {
  auto stopped = [](const absl::Status& s) {
    return absl::Status(
        s.code(),
        absl::StrCat("gc stopped before deleting anything: ", s.message(),
                     "; an unreadable index could reference any "
                     "chunk"));
  };
  auto reader = vault.OpenIndex(vol, id);
  if (absl::IsNotFound(reader.status())) return false;
  if (!reader.ok()) return stopped(reader.status());
  for (;;) {
    auto block = (*reader)->Next();
    if (absl::IsNotFound(block.status())) return false;
    if (!block.ok()) return stopped(block.status());
    if (block->empty()) break;
    if (absl::Status s = mark(*block); !s.ok()) return s;
  }
  absl::Status s = (*reader)->Finish();
  if (absl::IsNotFound(s)) return false;
  if (!s.ok()) return stopped(s);
  return true;
}

// ---- Format 1: one object per chunk.

absl::Status CollectLooseChunks(Vault& vault, const GcOptions& options,
                                GcResult& result) {
  std::unordered_set<ChunkHash, transport::ChunkHashStdHash> live;
  auto versions = VersionsByTenant(vault);
  if (!versions.ok()) return versions.status();
  for (const auto& [tenant, list] : *versions) {
    for (const auto& [vol, id] : list) {
      auto marked = MarkIndex(vault, vol, id, [&](auto block) {
        for (const ChunkHash& h : block) {
          if (!transport::IsZeroEntry(h)) live.insert(h);
        }
        return absl::OkStatus();
      });
      if (!marked.ok()) return marked.status();
      if (*marked) ++result.indexes;
    }
  }
  result.referenced = live.size();
  auto keys = vault.store().List("chunks");
  if (!keys.ok()) return keys.status();
  const int64_t cutoff = NowMs() - options.grace_ms;
  for (const std::string& key : *keys) {
    ++result.chunks_seen;
    auto hash = ChunkHash::FromHex(key.substr(key.rfind('/') + 1));
    if (!hash.ok()) continue;  // not ours: never delete what we do not know
    if (live.contains(*hash)) continue;
    auto mtime = vault.store().ModifiedUnixMs(key);
    if (!mtime.ok()) return mtime.status();
    if (*mtime > cutoff) {
      ++result.chunks_in_grace;
      continue;
    }
    if (!options.dry_run) {
      if (auto s = vault.store().Delete(key); !s.ok()) return s;
    }
    ++result.chunks_deleted;
  }
  if (!options.dry_run) {
    auto temps = vault.store().RemoveTempFiles("chunks", cutoff);
    if (!temps.ok()) return temps.status();
    result.temp_files_removed = *temps;
  }
  return absl::OkStatus();
}

// ---- Format 2: packs, per tenant.

class TenantGc {
 public:
  TenantGc(Vault& vault, std::string tenant, const GcOptions& options,
           GcResult& result)
      : vault_(vault),
        index_(*vault.chunk_index()),
        tenant_(std::move(tenant)),
        options_(options),
        result_(result),
        cutoff_(NowMs() - options.grace_ms) {}

  // Marks what `versions` reference (in the index, not in memory).
  absl::Status Mark(const VersionList& versions) {
    if (auto s = index_.BeginMark(tenant_); !s.ok()) return s;
    for (const auto& [vol, id] : versions) {
      auto marked = MarkIndex(vault_, vol, id, [&](auto block) {
        return index_.MarkLive(tenant_, block);
      });
      if (!marked.ok()) return marked.status();
      if (*marked) ++result_.indexes;
    }
    return absl::OkStatus();
  }

  const std::string& tenant() const { return tenant_; }

  // Deletes, repacks and removes orphans after the mark.
  absl::Status Sweep() {
    auto usage = index_.Usage(tenant_);
    if (!usage.ok()) return usage.status();
    std::vector<PackInfo> dead, sparse;
    Classify(*usage, dead, sparse);
    if (auto s = DeletePacks(dead); !s.ok()) return s;
    if (auto s = Repack(sparse); !s.ok()) return s;
    return RemoveOrphans();
  }

 private:
  void Classify(const std::vector<PackUsage>& usage,
                std::vector<PackInfo>& dead, std::vector<PackInfo>& sparse) {
    for (const PackUsage& u : usage) {
      ++result_.packs_seen;
      result_.chunks_seen += u.info.chunk_count;
      result_.referenced += u.live_chunks;
      const uint64_t payload =
          u.info.size_bytes -
          std::min<uint64_t>(u.info.size_bytes,
                             kPackHeaderBytes + kPackTrailerBytes);
      const bool is_dead = u.live_chunks == 0;
      const bool is_sparse =
          !is_dead && u.live_bytes < options_.repack_below * payload;
      if (!is_dead && !is_sparse) continue;
      if (u.info.added_unix_ms > cutoff_) {
        ++result_.packs_in_grace;
        continue;
      }
      (is_dead ? dead : sparse).push_back(u.info);
    }
  }

  // The index forgets the packs first, then their objects go: a crash in
  // between leaves orphans, which the next run removes.
  absl::Status DeletePacks(const std::vector<PackInfo>& packs) {
    if (packs.empty()) return absl::OkStatus();
    std::vector<std::string> names;
    for (const PackInfo& p : packs) {
      names.push_back(p.pack);
      result_.chunks_deleted += p.chunk_count;
      result_.bytes_reclaimed += p.size_bytes;
    }
    result_.packs_deleted += packs.size();
    if (options_.dry_run) return absl::OkStatus();
    if (auto s = index_.ReplacePacks(tenant_, names, std::nullopt, {});
        !s.ok()) {
      return s;
    }
    return DeleteObjects(names);
  }

  absl::Status DeleteObjects(const std::vector<std::string>& names) {
    for (const std::string& name : names) {
      if (auto s = vault_.store().Delete(Vault::PackKey(tenant_, name));
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  // The live records being copied into the next new pack.
  struct Copies {
    std::vector<std::pair<ChunkHash, std::string>> records;
    uint64_t bytes = 0;
    std::vector<std::string> olds;  // the packs they come from
    uint64_t old_bytes = 0;
  };

  // Copies the live records of `packs` into new packs of about
  // pack_target_bytes() each.
  absl::Status Repack(const std::vector<PackInfo>& packs) {
    Copies copies;
    for (const PackInfo& p : packs) {
      if (auto s = CopyLive(p, copies); !s.ok()) return s;
      if (copies.bytes >= vault_.pack_target_bytes()) {
        if (auto s = Commit(copies); !s.ok()) return s;
      }
    }
    return Commit(copies);
  }

  absl::Status CopyLive(const PackInfo& pack, Copies& copies) {
    auto live = index_.LiveEntries(tenant_, pack.pack);
    if (!live.ok()) return live.status();
    const std::string key = Vault::PackKey(tenant_, pack.pack);
    auto bytes = vault_.store().Get(key);
    if (!bytes.ok()) return bytes.status();
    for (const PackEntry& e : *live) {
      if (e.offset_bytes + e.length_bytes > bytes->size()) {
        return absl::DataLossError(absl::StrCat(
            "gc stopped: pack ", key, " is shorter than its index says (",
            bytes->size(), " bytes); run `cbt-receiver verify`"));
      }
      std::string record = bytes->substr(e.offset_bytes, e.length_bytes);
      // Never copy damage into a new pack under a good name.
      auto checked =
          DecodeChunkRecord(record, e.id,
                            absl::StrCat("chunk ", e.id.ToHex(), " in pack ",
                                         key, " at byte ", e.offset_bytes));
      if (!checked.ok()) {
        return absl::Status(checked.status().code(),
                            absl::StrCat("gc stopped before repacking: ",
                                         checked.status().message(),
                                         "; run `cbt-receiver verify`"));
      }
      copies.bytes += record.size();
      copies.records.emplace_back(e.id, std::move(record));
    }
    copies.olds.push_back(pack.pack);
    copies.old_bytes += pack.size_bytes;
    ++result_.packs_repacked;
    return absl::OkStatus();
  }

  // Writes the new pack and makes it durable, points the index at it and
  // forgets the old packs in one transaction, then deletes their objects.
  absl::Status Commit(Copies& copies) {
    if (copies.olds.empty()) return absl::OkStatus();
    std::optional<PackInfo> info;
    std::vector<PackEntry> entries;
    if (!copies.records.empty()) {
      ++result_.packs_written;
      const uint64_t size = kPackHeaderBytes + copies.bytes +
                            copies.records.size() * kPackEntryBytes +
                            kPackTrailerBytes;
      result_.bytes_rewritten += size;
      result_.bytes_reclaimed +=
          copies.old_bytes - std::min(copies.old_bytes, size);
    } else {
      result_.bytes_reclaimed += copies.old_bytes;
    }
    absl::Status s = absl::OkStatus();
    if (!options_.dry_run && !copies.records.empty()) {
      auto pack = vault_.WritePack(tenant_, copies.records);
      s = pack.status();
      if (s.ok()) s = vault_.store().SyncAll();
      if (s.ok()) {
        info = pack->info;
        entries = std::move(pack->entries);
      }
    }
    if (s.ok() && !options_.dry_run) {
      s = index_.ReplacePacks(tenant_, copies.olds, info, entries);
      if (s.ok()) s = DeleteObjects(copies.olds);
    }
    copies = Copies{};
    return s;
  }

  // Pack objects the index does not know, and temporary files.
  absl::Status RemoveOrphans() {
    auto known = index_.ListPacks(tenant_);
    if (!known.ok()) return known.status();
    std::set<std::string> names;
    for (const PackInfo& p : *known) names.insert(p.pack);
    const std::string prefix = absl::StrCat("tenants/", tenant_, "/packs");
    auto keys = vault_.store().List(prefix);
    if (!keys.ok()) return keys.status();
    for (const std::string& key : *keys) {
      const size_t slash = key.rfind('/') + 1;
      if (key.size() < slash + 5 || key.substr(key.size() - 5) != ".pack") {
        continue;  // not ours
      }
      if (names.contains(key.substr(slash, key.size() - 5 - slash))) continue;
      auto mtime = vault_.store().ModifiedUnixMs(key);
      if (!mtime.ok()) return mtime.status();
      if (*mtime > cutoff_) continue;
      ++result_.orphan_packs_removed;
      if (options_.dry_run) continue;
      if (auto s = vault_.store().Delete(key); !s.ok()) return s;
    }
    if (options_.dry_run) return absl::OkStatus();
    auto temps = vault_.store().RemoveTempFiles(prefix, cutoff_);
    if (!temps.ok()) return temps.status();
    result_.temp_files_removed += *temps;
    return absl::OkStatus();
  }

  Vault& vault_;
  ChunkIndex& index_;
  const std::string tenant_;
  const GcOptions& options_;
  GcResult& result_;
  const int64_t cutoff_;
};

absl::Status CollectPacks(Vault& vault, const GcOptions& options,
                          GcResult& result) {
  auto versions = VersionsByTenant(vault);
  if (!versions.ok()) return versions.status();
  auto tenants = vault.chunk_index()->ListTenants();
  if (!tenants.ok()) return tenants.status();
  std::vector<std::unique_ptr<TenantGc>> gcs;
  for (const std::string& tenant : *tenants) {
    gcs.push_back(std::make_unique<TenantGc>(vault, tenant, options, result));
  }
  // Every tenant is marked before anything is deleted anywhere: one
  // unreadable index stops the whole GC untouched.
  for (auto& gc : gcs) {
    auto it = versions->find(gc->tenant());
    if (auto s = gc->Mark(it == versions->end() ? VersionList{} : it->second);
        !s.ok()) {
      return s;
    }
  }
  for (auto& gc : gcs) {
    if (auto s = gc->Sweep(); !s.ok()) return s;
  }
  // What interrupted index writers left (receive_session.h stages a new
  // index there); no receive runs while GC holds the lock.
  if (!options.dry_run) {
    auto temps =
        vault.store().RemoveTempFiles("hosts", NowMs() - options.grace_ms);
    if (!temps.ok()) return temps.status();
    result.temp_files_removed += *temps;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GcResult> CollectGarbage(Vault& vault,
                                        const GcOptions& options) {
  auto lock =
      vault.store().Lock(kGcLockName, LockMode::kExclusive, options.wait);
  if (!lock.ok()) {
    if (absl::IsUnavailable(lock.status())) {
      return absl::UnavailableError(absl::StrCat(
          "a receive is running on this vault; retry gc later or pass --wait "
          "(",
          lock.status().message(), ")"));
    }
    return lock.status();
  }
  GcResult result;
  absl::Status s = vault.format() == 1
                       ? CollectLooseChunks(vault, options, result)
                       : CollectPacks(vault, options, result);
  if (!s.ok()) return s;
  return result;
}

}  // namespace cbtd::receiver
