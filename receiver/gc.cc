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
#include "receiver/receive_registration.h"

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
// nothing: what a version published since the listing references is
// marked from it or pinned, see CollectPacks). Any other error stops GC before
// it deletes anything. Marking from entries not yet verified is safe for that
// reason: a mark only keeps chunks, and a damaged index is found by Finish
// before the sweep.
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
  // `clock`: the session clock when this GC began; `cutoff`: packs added
  // after it are in their grace period.
  TenantGc(Vault& vault, std::string tenant, const GcOptions& options,
           GcResult& result, uint64_t clock, int64_t cutoff)
      : vault_(vault),
        index_(*vault.chunk_index()),
        tenant_(std::move(tenant)),
        options_(options),
        result_(result),
        clock_(clock),
        cutoff_(cutoff) {}

  // Marks what `versions` reference (in the index, not in memory).
  absl::Status Mark(const VersionList& versions) {
    if (auto s = index_.BeginMark(tenant_); !s.ok()) return s;
    for (const auto& [vol, id] : versions) {
      if (auto s = MarkVersion(vol, id); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Adds what one more version references to the mark (a deleted one
  // adds nothing).
  absl::Status MarkVersion(const VolumeName& vol, const std::string& id) {
    auto marked = MarkIndex(vault_, vol, id, [&](auto block) {
      return index_.MarkLive(tenant_, block);
    });
    if (!marked.ok()) return marked.status();
    if (*marked) ++result_.indexes;
    return absl::OkStatus();
  }

  // Deletes, repacks and removes orphans after the mark, sparing the packs
  // receives have pinned.
  absl::Status Sweep() {
    auto usage = index_.Usage(tenant_);
    if (!usage.ok()) return usage.status();
    auto pinned = index_.PinnedPacks(tenant_, clock_);
    if (!pinned.ok()) return pinned.status();
    std::vector<PackInfo> dead, sparse;
    Classify(*usage, {pinned->begin(), pinned->end()}, dead, sparse);
    if (auto s = DeletePacks(dead); !s.ok()) return s;
    if (auto s = Repack(sparse); !s.ok()) return s;
    return RemoveOrphans();
  }

 private:
  void Classify(const std::vector<PackUsage>& usage,
                const std::set<std::string>& pinned,
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
      if (pinned.contains(u.info.pack)) {
        ++result_.packs_pinned;
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
    absl::Status s =
        index_.ReplacePacks(tenant_, names, std::nullopt, {}, clock_);
    if (absl::IsAborted(s)) return DeleteEachUnpinned(packs);
    if (!s.ok()) return s;
    return DeleteObjects(names);
  }

  // A receive pinned one of the packs after Classify: one at a time, the
  // pinned ones kept.
  absl::Status DeleteEachUnpinned(const std::vector<PackInfo>& packs) {
    for (const PackInfo& p : packs) {
      const std::string name[] = {p.pack};
      absl::Status s =
          index_.ReplacePacks(tenant_, name, std::nullopt, {}, clock_);
      if (absl::IsAborted(s)) {
        --result_.packs_deleted;
        result_.chunks_deleted -= p.chunk_count;
        result_.bytes_reclaimed -= p.size_bytes;
        ++result_.packs_pinned;
        continue;
      }
      if (!s.ok()) return s;
      if (s = DeleteObjects(name); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status DeleteObjects(std::span<const std::string> names) {
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
      s = index_.ReplacePacks(tenant_, copies.olds, info, entries, clock_);
      if (absl::IsAborted(s)) {
        // A receive pinned an old pack after Classify: its entries stay
        // where they are, and the new pack, unknown to the index, goes.
        result_.packs_pinned += copies.olds.size();
        result_.packs_repacked -= copies.olds.size();
        s = absl::OkStatus();
        if (info.has_value()) {
          --result_.packs_written;
          s = vault_.store().Delete(Vault::PackKey(tenant_, info->pack));
        }
      } else if (s.ok()) {
        s = DeleteObjects(copies.olds);
      }
    }
    copies = Copies{};
    return s;
  }

  // Pack objects the index does not know, and temporary files. The order
  // matters: a receive registers before it writes its first pack and
  // indexes its packs before it ends (receive_registration.h). So with no
  // session open after the objects are listed, each listed pack is either
  // indexed by then or left by a receive that failed; the index is read
  // last. (Reading it first, a receive opening after a "none open" check
  // could write a pack that looked orphaned: its file time is coarse and
  // can precede a cutoff of "now", so a grace of 0 removed it while the
  // receive went on to index it.)
  absl::Status RemoveOrphans() {
    const std::string prefix = absl::StrCat("tenants/", tenant_, "/packs");
    auto keys = vault_.store().List(prefix);
    if (!keys.ok()) return keys.status();
    auto receiving = AnySessionOpen(vault_, tenant_);
    if (!receiving.ok()) return receiving.status();
    if (*receiving) return absl::OkStatus();
    auto known = index_.ListPacks(tenant_);
    if (!known.ok()) return known.status();
    std::set<std::string> names;
    for (const PackInfo& p : *known) names.insert(p.pack);
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
  const uint64_t clock_;
  const int64_t cutoff_;
};

// Marks, for each tenant, what the versions of sessions open or ended
// since `clock` reference: a version published after the listing (its
// base may since have been deleted) is marked all the same.
absl::Status MarkSessionVersions(
    Vault& vault, uint64_t clock,
    std::map<std::string, std::unique_ptr<TenantGc>>& gcs) {
  auto sessions = vault.chunk_index()->SessionsSince(clock);
  if (!sessions.ok()) return sessions.status();
  for (const SessionInfo& s : *sessions) {
    auto gc = gcs.find(s.tenant);
    if (gc == gcs.end()) continue;  // a tenant with no pack yet
    if (auto st = gc->second->MarkVersion({s.host, s.volume}, s.version);
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

// See receiver/receive_registration.h and docs/vault.md, "GC while
// receiving", for why this order keeps every chunk a receive relies on.
absl::Status CollectPacks(Vault& vault, const GcOptions& options,
                          GcResult& result) {
  ChunkIndex& index = *vault.chunk_index();
  const int64_t cutoff = NowMs() - options.grace_ms;
  auto clock = index.SessionClock();
  if (!clock.ok()) return clock.status();
  if (!options.dry_run) {
    auto ended = EndDeadSessions(vault);
    if (!ended.ok()) return ended.status();
    result.dead_sessions_ended = *ended;
  }
  auto versions = VersionsByTenant(vault);
  if (!versions.ok()) return versions.status();
  auto tenants = index.ListTenants();
  if (!tenants.ok()) return tenants.status();
  std::map<std::string, std::unique_ptr<TenantGc>> gcs;
  for (const std::string& tenant : *tenants) {
    gcs[tenant] = std::make_unique<TenantGc>(vault, tenant, options, result,
                                             *clock, cutoff);
  }
  // Every tenant is marked before anything is deleted anywhere: one
  // unreadable index stops the whole GC untouched.
  for (auto& [tenant, gc] : gcs) {
    auto it = versions->find(tenant);
    if (auto s = gc->Mark(it == versions->end() ? VersionList{} : it->second);
        !s.ok()) {
      return s;
    }
  }
  if (auto s = MarkSessionVersions(vault, *clock, gcs); !s.ok()) return s;
  for (auto& [tenant, gc] : gcs) {
    if (auto s = gc->Sweep(); !s.ok()) return s;
  }
  if (options.dry_run) return absl::OkStatus();
  // What interrupted index writers left (receive_session.h stages a new
  // index there), unless a receive is writing one now.
  auto receiving = AnySessionOpen(vault, "");
  if (!receiving.ok()) return receiving.status();
  if (!*receiving) {
    auto temps = vault.store().RemoveTempFiles("hosts", cutoff);
    if (!temps.ok()) return temps.status();
    result.temp_files_removed += *temps;
  }
  return index.ForgetSessions(*clock);
}

}  // namespace

absl::StatusOr<GcResult> CollectGarbage(Vault& vault,
                                        const GcOptions& options) {
  // Format 1 is read-only (nothing receives into it) and keeps the lock
  // that excludes receives; format 2 runs alongside them, one GC at a time.
  const bool packs = vault.format() == 2;
  auto lock = vault.store().Lock(packs ? kGcRunLockName : kGcLockName,
                                 LockMode::kExclusive, options.wait);
  if (!lock.ok()) {
    if (absl::IsUnavailable(lock.status())) {
      return absl::UnavailableError(absl::StrCat(
          packs ? "another gc is running on this vault"
                : "a receive or migrate is using this vault",
          "; retry gc later or pass --wait (", lock.status().message(), ")"));
    }
    return lock.status();
  }
  GcResult result;
  absl::Status s = packs ? CollectPacks(vault, options, result)
                         : CollectLooseChunks(vault, options, result);
  if (!s.ok()) return s;
  return result;
}

}  // namespace cbtd::receiver
