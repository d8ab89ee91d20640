// RadosChunkIndex: chunk entries, packs, marks and GC
// (receiver/rados_chunk_index.h has the layout and the ordering rules).
#include "receiver/rados_chunk_index.h"

#include <algorithm>
#include <cerrno>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/byte_order.h"
#include "receiver/rados_chunk_index_internal.h"
#include "receiver/rados_omap.h"
#include "receiver/rados_status.h"

namespace cbtd::receiver {

using rados::bufferlist;
using rados::FromBl;
using rados::ToBl;
namespace ci = rados_chunk_index;

namespace {

// Attempts of a compare-and-set before giving up (each conflict means
// another writer made progress on the same shard).
constexpr int kMaxAttempts = 50;

// Entries grouped by shard, in order, the first entry of an id only.
using ByShard = std::map<int, std::map<std::string, const PackEntry*>>;

ByShard GroupByShard(std::span<const PackEntry> entries) {
  ByShard out;
  for (const PackEntry& e : entries) {
    out[ci::ShardOf(e.id)].emplace(ci::IdKey(e.id), &e);
  }
  return out;
}

std::map<int, std::set<std::string>> KeysByShard(
    std::span<const ChunkHash> ids) {
  std::map<int, std::set<std::string>> out;
  for (const ChunkHash& id : ids) out[ci::ShardOf(id)].insert(ci::IdKey(id));
  return out;
}

using Values = std::map<std::string, bufferlist>;

// The packs other than `pack` that `current`'s entries name.
std::set<std::string> OtherPacks(const std::map<int, Values>& current,
                                 const std::string& pack) {
  std::set<std::string> out;
  for (const auto& [shard, values] : current) {
    for (const auto& [key, value] : values) {
      auto loc = ci::DecodeLocation(FromBl(value));
      if (loc.has_value() && loc->pack != pack) out.insert(loc->pack);
    }
  }
  return out;
}

// The write of one shard: `keys` point at `pack` unless the tenant holds
// them (`values`, as read) in a pack not doomed; each asserts the value it
// replaces (absent: empty), unless `replace`, which writes them all.
void ShardWrite(librados::ObjectWriteOperation& op, const std::string& pack,
                const std::map<std::string, const PackEntry*>& keys,
                const Values& values, const std::set<std::string>& doomed,
                bool replace) {
  std::map<std::string, bufferlist> set;
  std::map<std::string, std::pair<bufferlist, int>> cmp;
  for (const auto& [key, entry] : keys) {
    auto it = values.find(key);
    const bool held = it != values.end();
    if (held && !replace) {
      auto loc = ci::DecodeLocation(FromBl(it->second));
      if (loc.has_value() && !doomed.contains(loc->pack)) continue;
    }
    set[key] = ToBl(
        ci::EncodeLocation({pack, entry->offset_bytes, entry->length_bytes}));
    if (!replace) {
      cmp[key] = {held ? it->second : bufferlist(), LIBRADOS_CMPXATTR_OP_EQ};
    }
  }
  op.create(/*exclusive=*/false);
  if (!cmp.empty()) op.omap_cmp(cmp, nullptr);
  op.omap_set(set);
}

absl::Status CheckEntries(const PackInfo& pack,
                          std::span<const PackEntry> entries) {
  if (pack.pack.empty() || pack.pack.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid pack name '", pack.pack, "'"));
  }
  for (const PackEntry& e : entries) {
    if (e.offset_bytes + e.length_bytes > pack.size_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk ", e.id.ToHex(), " at ", e.offset_bytes, "+",
                       e.length_bytes, " lies past the end of pack ", pack.pack,
                       " (", pack.size_bytes, " bytes)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

RadosChunkIndex::RadosChunkIndex(librados::IoCtx ioctx, std::string where)
    : ioctx_(std::move(ioctx)), where_(std::move(where)) {}

RadosChunkIndex::~RadosChunkIndex() = default;

std::string RadosChunkIndex::Where(std::string_view op,
                                   const std::string& oid) const {
  return absl::StrCat(std::string(op), " of chunk index object '", oid,
                      "' in RADOS pool ", where_);
}

absl::StatusOr<std::optional<ChunkLocation>> RadosChunkIndex::Find(
    std::string_view tenant, const ChunkHash& id) {
  const std::string oid = ci::ShardOid(tenant, ci::ShardOf(id));
  const std::string key = ci::IdKey(id);
  auto values = rados::GetValues(ioctx_, oid, {key}, Where("read", oid));
  if (!values.ok()) return values.status();
  auto it = values->find(key);
  if (it == values->end()) return std::optional<ChunkLocation>();
  auto loc = ci::DecodeLocation(FromBl(it->second));
  if (!loc.has_value()) {
    return absl::DataLossError(
        absl::StrCat(Where("read", oid), ": the entry of chunk ", id.ToHex(),
                     " is damaged; run `cbt-receiver verify`"));
  }
  return loc;
}

absl::StatusOr<std::vector<std::optional<ChunkLocation>>>
RadosChunkIndex::FindMany(std::string_view tenant,
                          std::span<const ChunkHash> ids) {
  ByShardKeys keys;
  for (const ChunkHash& id : ids) keys[ci::ShardOf(id)][ci::IdKey(id)];
  auto values = ReadShards(tenant, keys);
  if (!values.ok()) return values.status();
  std::vector<std::optional<ChunkLocation>> out;
  out.reserve(ids.size());
  for (const ChunkHash& id : ids) {
    const Values& shard = (*values)[ci::ShardOf(id)];
    auto it = shard.find(ci::IdKey(id));
    if (it == shard.end()) {
      out.emplace_back();
      continue;
    }
    auto loc = ci::DecodeLocation(FromBl(it->second));
    if (!loc.has_value()) {
      return absl::DataLossError(
          absl::StrCat(Where("read", ci::ShardOid(tenant, ci::ShardOf(id))),
                       ": the entry of chunk ", id.ToHex(),
                       " is damaged; run `cbt-receiver verify`"));
    }
    out.push_back(*std::move(loc));
  }
  return out;
}

absl::Status RadosChunkIndex::AddPack(std::string_view tenant,
                                      const PackInfo& pack,
                                      std::span<const PackEntry> entries,
                                      SessionId session) {
  if (absl::Status s = CheckEntries(pack, entries); !s.ok()) return s;
  return RecordPack(tenant, pack, entries, session, /*replace=*/false);
}

absl::Status RadosChunkIndex::RecordPack(std::string_view tenant,
                                         const PackInfo& pack,
                                         std::span<const PackEntry> entries,
                                         SessionId session, bool replace) {
  // Pinned before it exists: no GC can meet it unpinned.
  auto pinned = Pin(session, tenant, {pack.pack});
  if (!pinned.ok()) return pinned.status();
  Remember(session, *pinned);
  const std::string record = ci::RecordOid(pack.pack);
  {
    librados::ObjectWriteOperation op;
    op.create(/*exclusive=*/true);
    op.write_full(ToBl(ci::EncodeRecord(tenant, entries)));
    const int rc = ioctx_.operate(record, &op);
    if (rc == -EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("pack ", pack.pack, " is already recorded in the ",
                       "chunk index of RADOS pool ", where_));
    }
    if (rc < 0) return RadosStatus(rc, Where("create", record));
  }
  rados::WriteBatch lists;
  lists.Add(ci::TenantsOid()).omap_set({{std::string(tenant), ToBl("")}});
  lists.Add(ci::PacksOid(tenant))
      .omap_set({{pack.pack, ToBl(ci::EncodePackInfo(pack))}});
  const std::vector<int> rcs = rados::Run(ioctx_, lists);
  for (size_t i = 0; i < rcs.size(); ++i) {
    if (rcs[i] < 0) return RadosStatus(rcs[i], Where("write", lists.oids[i]));
  }
  return AddEntries(tenant, pack.pack, entries, replace, session);
}

// One round: reads the shards' current values for the keys, decides what
// to write, writes with a compare of what it read. Shards whose compare
// failed (a key was present, or another writer came between) go round
// again.
absl::Status RadosChunkIndex::AddEntries(std::string_view tenant,
                                         const std::string& pack,
                                         std::span<const PackEntry> entries,
                                         bool replace, SessionId session) {
  ByShard pending = GroupByShard(entries);
  for (int attempt = 0; !pending.empty(); ++attempt) {
    if (attempt == kMaxAttempts) {
      return absl::AbortedError(absl::StrCat(
          "adding the entries of pack ", pack, " to the chunk index of RADOS ",
          "pool ", where_, " kept conflicting with other writers; retry"));
    }
    // The first round assumes every key absent (a new pack's chunks mostly
    // are): one write per shard, no read; a shard where one is present
    // fails its compare and goes round again with a read. A replacement
    // writes without a compare, so never reads.
    absl::StatusOr<std::map<int, Values>> current = std::map<int, Values>();
    if (attempt > 0 && !replace) current = ReadShards(tenant, pending);
    if (!current.ok()) return current.status();
    // Locations kept in other packs: pinned, then checked not doomed.
    const std::set<std::string> kept = OtherPacks(*current, pack);
    std::set<std::string> doomed;
    if (!replace && !kept.empty()) {
      auto d = PinKept(session, tenant, kept);
      if (!d.ok()) return d.status();
      doomed = *std::move(d);
    }
    rados::WriteBatch writes;
    for (const auto& [shard, keys] : pending) {
      ShardWrite(writes.Add(ci::ShardOid(tenant, shard)), pack, keys,
                 (*current)[shard], doomed, replace);
    }
    const std::vector<int> rcs = rados::Run(ioctx_, writes);
    ByShard retry;
    size_t i = 0;
    for (auto& [shard, keys] : pending) {
      const int rc = rcs[i];
      const std::string& oid = writes.oids[i++];
      if (rc == -ECANCELED) {
        retry.emplace(shard, std::move(keys));
      } else if (rc < 0) {
        return RadosStatus(rc, Where("write", oid));
      }
    }
    pending = std::move(retry);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<int, std::map<std::string, bufferlist>>>
RadosChunkIndex::ReadShards(std::string_view tenant, const ByShardKeys& keys) {
  rados::ReadBatch reads;
  std::vector<std::map<std::string, bufferlist>> values(keys.size());
  std::vector<int> prvals(keys.size(), 0);
  size_t i = 0;
  for (const auto& [shard, entries] : keys) {
    std::set<std::string> wanted;
    for (const auto& [key, unused] : entries) wanted.insert(key);
    reads.Add(ci::ShardOid(tenant, shard))
        .omap_get_vals_by_keys(wanted, &values[i], &prvals[i]);
    ++i;
  }
  const std::vector<int> rcs = rados::Run(ioctx_, reads);
  std::map<int, std::map<std::string, bufferlist>> out;
  i = 0;
  for (const auto& [shard, entries] : keys) {
    int rc = rcs[i] < 0 ? rcs[i] : prvals[i];
    if (rc < 0 && rc != -ENOENT) {
      return RadosStatus(rc, Where("read", reads.oids[i]));
    }
    out[shard] =
        rc < 0 ? std::map<std::string, bufferlist>() : std::move(values[i]);
    ++i;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> RadosChunkIndex::ListTenants() {
  std::vector<std::string> out;
  absl::Status s = rados::ForEach(
      ioctx_, ci::TenantsOid(), "", Where("read", ci::TenantsOid()),
      [&](const std::string& tenant, const bufferlist&) {
        auto packs = ListPacks(tenant);  // one whose packs all went is none
        if (!packs.ok()) return packs.status();
        if (!packs->empty()) out.push_back(tenant);
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<PackInfo>> RadosChunkIndex::ListPacks(
    std::string_view tenant) {
  const std::string oid = ci::PacksOid(tenant);
  std::vector<PackInfo> out;
  absl::Status s = rados::ForEach(
      ioctx_, oid, "", Where("read", oid),
      [&](const std::string& pack, const bufferlist& value) {
        auto info = ci::DecodePackInfo(pack, FromBl(value));
        if (!info.has_value()) {
          return absl::DataLossError(absl::StrCat(
              Where("read", oid), ": the entry of pack ", pack, " is damaged"));
        }
        out.push_back(*std::move(info));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

// --- Marks.

absl::StatusOr<uint64_t> RadosChunkIndex::MarkGeneration(
    std::string_view tenant) {
  const std::string oid = ci::MarkOid(tenant);
  bufferlist bl;
  const int rc = ioctx_.read(oid, bl, 64, 0);
  if (rc == -ENOENT) return 0;
  if (rc < 0) return RadosStatus(rc, Where("read", oid));
  auto gen = ci::ParseU64(FromBl(bl));
  if (!gen.has_value()) {
    return absl::DataLossError(
        absl::StrCat(Where("read", oid), ": not a mark generation"));
  }
  return *gen;
}

absl::Status RadosChunkIndex::BeginMark(std::string_view tenant) {
  auto gen = MarkGeneration(tenant);
  if (!gen.ok()) return gen.status();
  const std::string oid = ci::MarkOid(tenant);
  bufferlist next = ToBl(std::to_string(*gen + 1));
  if (int rc = ioctx_.write_full(oid, next); rc < 0) {
    return RadosStatus(rc, Where("write", oid));
  }
  // The old generation's shards, and the doomed marks a GC that died left:
  // only one GC runs at a time (callers hold the GC lock).
  rados::WriteBatch removes;
  for (int shard = 0; shard < ci::kShards; ++shard) {
    removes.Add(ci::MarkShardOid(tenant, *gen, shard)).remove();
  }
  removes.Add(ci::DoomedOid(tenant)).remove();
  const std::vector<int> rcs = rados::Run(ioctx_, removes);
  for (size_t i = 0; i < rcs.size(); ++i) {
    if (rcs[i] < 0 && rcs[i] != -ENOENT) {
      return RadosStatus(rcs[i], Where("remove", removes.oids[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status RadosChunkIndex::MarkLive(std::string_view tenant,
                                       std::span<const ChunkHash> ids) {
  auto gen = MarkGeneration(tenant);
  if (!gen.ok()) return gen.status();
  rados::WriteBatch writes;
  for (const auto& [shard, keys] : KeysByShard(ids)) {
    std::map<std::string, bufferlist> set;
    for (const std::string& key : keys) set[key] = bufferlist();
    writes.Add(ci::MarkShardOid(tenant, *gen, shard)).omap_set(set);
  }
  const std::vector<int> rcs = rados::Run(ioctx_, writes);
  for (size_t i = 0; i < rcs.size(); ++i) {
    if (rcs[i] < 0) return RadosStatus(rcs[i], Where("write", writes.oids[i]));
  }
  return absl::OkStatus();
}

// Each shard's entries merged with its marks, both read in key order a
// page at a time.
absl::StatusOr<std::vector<PackUsage>> RadosChunkIndex::Usage(
    std::string_view tenant) {
  auto packs = ListPacks(tenant);
  if (!packs.ok()) return packs.status();
  auto gen = MarkGeneration(tenant);
  if (!gen.ok()) return gen.status();
  std::map<std::string, PackUsage> usage;
  for (const PackInfo& p : *packs) usage[p.pack].info = p;
  for (int shard = 0; shard < ci::kShards; ++shard) {
    const std::string oid = ci::ShardOid(tenant, shard);
    const std::string marks = ci::MarkShardOid(tenant, *gen, shard);
    rados::OmapPager entries(ioctx_, oid, "", Where("read", oid));
    rados::OmapPager marked(ioctx_, marks, "", Where("read", marks));
    std::string key, mark;
    bufferlist value, unused;
    absl::StatusOr<bool> have_mark = marked.Next(mark, unused);
    while (true) {
      if (!have_mark.ok()) return have_mark.status();
      auto more = entries.Next(key, value);
      if (!more.ok()) return more.status();
      if (!*more) break;
      while (*have_mark && mark < key) have_mark = marked.Next(mark, unused);
      if (!have_mark.ok()) return have_mark.status();
      if (!*have_mark || mark != key) continue;
      auto loc = ci::DecodeLocation(FromBl(value));
      if (!loc.has_value()) {
        return absl::DataLossError(
            absl::StrCat(Where("read", oid), ": a damaged entry"));
      }
      auto it = usage.find(loc->pack);
      if (it == usage.end()) continue;  // a pack being forgotten
      ++it->second.live_chunks;
      it->second.live_bytes += loc->length_bytes;
    }
  }
  std::vector<PackUsage> out;
  for (auto& [name, u] : usage) out.push_back(std::move(u));
  return out;
}

absl::StatusOr<std::vector<PackEntry>> RadosChunkIndex::LiveEntries(
    std::string_view tenant, std::string_view pack) {
  auto ids = RecordIds(tenant, std::string(pack));
  if (!ids.ok()) return ids.status();
  auto gen = MarkGeneration(tenant);
  if (!gen.ok()) return gen.status();
  std::map<int, std::set<std::string>> by_shard = KeysByShard(*ids);
  rados::ReadBatch reads;
  std::vector<std::map<std::string, bufferlist>> values(2 * by_shard.size());
  std::vector<int> prvals(values.size(), 0);
  size_t i = 0;
  for (const auto& [shard, keys] : by_shard) {
    reads.Add(ci::ShardOid(tenant, shard))
        .omap_get_vals_by_keys(keys, &values[i], &prvals[i]);
    reads.Add(ci::MarkShardOid(tenant, *gen, shard))
        .omap_get_vals_by_keys(keys, &values[i + 1], &prvals[i + 1]);
    i += 2;
  }
  const std::vector<int> rcs = rados::Run(ioctx_, reads);
  std::vector<PackEntry> out;
  for (i = 0; i < values.size(); i += 2) {
    for (size_t j : {i, i + 1}) {
      const int rc = rcs[j] < 0 ? rcs[j] : prvals[j];
      if (rc < 0 && rc != -ENOENT) {
        return RadosStatus(rc, Where("read", reads.oids[j]));
      }
    }
    for (const auto& [key, value] : values[i]) {
      if (!values[i + 1].contains(key)) continue;
      auto loc = ci::DecodeLocation(FromBl(value));
      if (!loc.has_value() || loc->pack != pack) continue;
      out.push_back(
          PackEntry{ci::IdOfKey(key), loc->offset_bytes, loc->length_bytes});
    }
  }
  std::sort(out.begin(), out.end(), [](const PackEntry& a, const PackEntry& b) {
    return a.offset_bytes < b.offset_bytes;
  });
  return out;
}

// The ids of the pack's record; NOT_FOUND unless the tenant has the pack.
absl::StatusOr<std::vector<ChunkHash>> RadosChunkIndex::RecordIds(
    std::string_view tenant, const std::string& pack) {
  const std::string oid = ci::RecordOid(pack);
  bufferlist bl;
  const int rc = ioctx_.read(oid, bl, 0, 0);
  auto record = rc < 0 ? std::nullopt : ci::DecodeRecord(FromBl(bl));
  if (rc == -ENOENT || (record.has_value() && record->tenant != tenant)) {
    return absl::NotFoundError(absl::StrCat("tenant ", std::string(tenant),
                                            " has no pack ", pack,
                                            " in RADOS pool ", where_));
  }
  if (rc < 0) return RadosStatus(rc, Where("read", oid));
  if (!record.has_value()) {
    return absl::DataLossError(
        absl::StrCat(Where("read", oid), ": not a pack record"));
  }
  return std::move(record->ids);
}

// --- GC's change: doom, check pins, record the replacement, remove the
// old entries, forget the old packs.

absl::Status RadosChunkIndex::ReplacePacks(
    std::string_view tenant, std::span<const std::string> old_packs,
    const std::optional<PackInfo>& replacement,
    std::span<const PackEntry> replacement_entries, uint64_t pins_since) {
  if (!replacement.has_value() && !replacement_entries.empty()) {
    return absl::InvalidArgumentError(
        "ReplacePacks: entries without a replacement pack to hold them");
  }
  if (replacement.has_value()) {
    if (auto s = CheckEntries(*replacement, replacement_entries); !s.ok()) {
      return s;
    }
  }
  std::map<std::string, std::vector<ChunkHash>> old;
  for (const std::string& pack : old_packs) {
    auto ids = RecordIds(tenant, pack);
    if (!ids.ok()) return ids.status();
    old[pack] = *std::move(ids);
  }
  if (auto s = SetDoomed(tenant, old_packs, true); !s.ok()) return s;
  auto pinned = PinnedPacks(tenant, pins_since);
  if (!pinned.ok()) return pinned.status();
  for (const std::string& pack : *pinned) {
    if (!old.contains(pack)) continue;
    SetDoomed(tenant, old_packs, false).IgnoreError();
    return absl::AbortedError(absl::StrCat(
        "pack ", pack, " of tenant ", std::string(tenant),
        " is pinned by a receive session; it is kept until the next GC"));
  }
  if (replacement.has_value()) {
    if (auto s = RecordPack(tenant, *replacement, replacement_entries,
                            kNoSession, /*replace=*/true);
        !s.ok()) {
      return s;
    }
  }
  for (const auto& [pack, ids] : old) {
    if (auto s = RemoveEntries(tenant, pack, ids); !s.ok()) return s;
    if (auto s = ForgetPack(tenant, pack); !s.ok()) return s;
  }
  return SetDoomed(tenant, old_packs, false);
}

// Removes each of `ids`' entries that still names `pack`, asserting the
// value it read so an entry re-pointed meanwhile stays.
absl::Status RadosChunkIndex::RemoveEntries(std::string_view tenant,
                                            const std::string& pack,
                                            std::span<const ChunkHash> ids) {
  std::map<int, std::set<std::string>> pending = KeysByShard(ids);
  for (int attempt = 0; !pending.empty(); ++attempt) {
    if (attempt == kMaxAttempts) {
      return absl::AbortedError(absl::StrCat(
          "removing the entries of pack ", pack, " from the chunk index of ",
          "RADOS pool ", where_, " kept conflicting with other writers"));
    }
    ByShardKeys keys;
    for (const auto& [shard, set] : pending) {
      for (const std::string& k : set) keys[shard][k] = nullptr;
    }
    auto current = ReadShards(tenant, keys);
    if (!current.ok()) return current.status();
    rados::WriteBatch writes;
    std::vector<int> shards;
    for (const auto& [shard, values] : *current) {
      std::set<std::string> rm;
      std::map<std::string, std::pair<bufferlist, int>> cmp;
      for (const auto& [key, value] : values) {
        auto loc = ci::DecodeLocation(FromBl(value));
        if (!loc.has_value() || loc->pack != pack) continue;
        rm.insert(key);
        cmp[key] = {value, LIBRADOS_CMPXATTR_OP_EQ};
      }
      if (rm.empty()) continue;
      auto& op = writes.Add(ci::ShardOid(tenant, shard));
      op.omap_cmp(cmp, nullptr);
      op.omap_rm_keys(rm);
      shards.push_back(shard);
    }
    const std::vector<int> rcs = rados::Run(ioctx_, writes);
    std::map<int, std::set<std::string>> retry;
    for (size_t i = 0; i < rcs.size(); ++i) {
      if (rcs[i] == -ECANCELED) {
        retry[shards[i]] = std::move(pending[shards[i]]);
      } else if (rcs[i] < 0 && rcs[i] != -ENOENT) {
        return RadosStatus(rcs[i], Where("write", writes.oids[i]));
      }
    }
    pending = std::move(retry);
  }
  return absl::OkStatus();
}

absl::Status RadosChunkIndex::ForgetPack(std::string_view tenant,
                                         const std::string& pack) {
  const std::string list = ci::PacksOid(tenant);
  librados::ObjectWriteOperation op;
  op.omap_rm_keys({pack});
  if (int rc = ioctx_.operate(list, &op); rc < 0 && rc != -ENOENT) {
    return RadosStatus(rc, Where("write", list));
  }
  const std::string record = ci::RecordOid(pack);
  if (int rc = ioctx_.remove(record); rc < 0 && rc != -ENOENT) {
    return RadosStatus(rc, Where("remove", record));
  }
  return absl::OkStatus();
}

absl::Status RadosChunkIndex::SetDoomed(std::string_view tenant,
                                        std::span<const std::string> packs,
                                        bool doomed) {
  const std::string oid = ci::DoomedOid(tenant);
  librados::ObjectWriteOperation op;
  if (doomed) {
    std::map<std::string, bufferlist> set;
    for (const std::string& p : packs) set[p] = bufferlist();
    op.omap_set(set);
  } else {
    op.omap_rm_keys(std::set<std::string>(packs.begin(), packs.end()));
  }
  const int rc = ioctx_.operate(oid, &op);
  if (rc < 0 && !(rc == -ENOENT && !doomed)) {
    return RadosStatus(rc, Where("write", oid));
  }
  return absl::OkStatus();
}

// Doomed: a GC is forgetting it, or has (its record is gone).
absl::StatusOr<bool> RadosChunkIndex::Doomed(std::string_view tenant,
                                             const std::string& pack) {
  const std::string oid = ci::DoomedOid(tenant);
  auto marks = rados::GetValues(ioctx_, oid, {pack}, Where("read", oid));
  if (!marks.ok()) return marks.status();
  if (!marks->empty()) return true;
  const std::string record = ci::RecordOid(pack);
  uint64_t size = 0;
  time_t mtime = 0;
  const int rc = ioctx_.stat(record, &size, &mtime);
  if (rc == -ENOENT) return true;
  if (rc < 0) return RadosStatus(rc, Where("stat", record));
  return false;
}

}  // namespace cbtd::receiver
