// The RADOS chunk index's names and encodings
// (receiver/rados_chunk_index_internal.h).
#include <charconv>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/byte_order.h"
#include "receiver/rados_chunk_index_internal.h"

namespace cbtd::receiver::rados_chunk_index {

using common::GetLe;
using common::PutLe;

namespace {

constexpr char kRoot[] = ".chunk-index/";
constexpr char kRecordMagic[] = "CBTDPR1\n";

std::string TenantDir(std::string_view tenant) {
  return absl::StrCat(kRoot, "t/", std::string(tenant), "/");
}

std::string Hex2(int shard) {
  char buf[3];
  std::snprintf(buf, sizeof buf, "%02x", shard & 0xff);
  return buf;
}

// A u32le-length-prefixed string.
void PutString(std::string& out, std::string_view s) {
  PutLe(out, s.size(), 4);
  out.append(s);
}

// Reads what PutString wrote at `v`, advancing it; nullopt if short.
std::optional<std::string> GetString(std::string_view& v) {
  if (v.size() < 4) return std::nullopt;
  const uint64_t n = GetLe(v.data(), 4);
  if (v.size() - 4 < n) return std::nullopt;
  std::string s(v.substr(4, n));
  v.remove_prefix(4 + n);
  return s;
}

}  // namespace

std::string TenantsOid() { return absl::StrCat(kRoot, "tenants"); }
std::string PacksOid(std::string_view tenant) {
  return TenantDir(tenant) + "packs";
}
std::string ShardOid(std::string_view tenant, int shard) {
  return TenantDir(tenant) + "chunks/" + Hex2(shard);
}
std::string MarkOid(std::string_view tenant) {
  return TenantDir(tenant) + "mark";
}
std::string MarkShardOid(std::string_view tenant, uint64_t gen, int shard) {
  return absl::StrCat(TenantDir(tenant), "mark-", gen, "/", Hex2(shard));
}
std::string DoomedOid(std::string_view tenant) {
  return TenantDir(tenant) + "doomed";
}
std::string RecordOid(std::string_view pack) {
  return absl::StrCat(kRoot, "packs/", std::string(pack));
}
std::string SessionsOid() { return absl::StrCat(kRoot, "sessions"); }
std::string PinsOid(SessionId session) {
  return absl::StrCat(kRoot, "pins/", session);
}

int ShardOf(const ChunkHash& id) { return id.bytes()[0]; }

std::string IdKey(const ChunkHash& id) {
  return std::string(reinterpret_cast<const char*>(id.bytes().data()),
                     ChunkHash::kSize);
}

ChunkHash IdOfKey(std::string_view key) {
  std::array<uint8_t, ChunkHash::kSize> b{};
  std::copy_n(key.data(), std::min(key.size(), b.size()), b.begin());
  return ChunkHash(b);
}

std::string EncodeLocation(const ChunkLocation& loc) {
  std::string out;
  PutLe(out, loc.offset_bytes, 8);
  PutLe(out, loc.length_bytes, 4);
  out.append(loc.pack);
  return out;
}

std::optional<ChunkLocation> DecodeLocation(std::string_view v) {
  if (v.size() <= 12) return std::nullopt;
  return ChunkLocation{
      .pack = std::string(v.substr(12)),
      .offset_bytes = GetLe(v.data(), 8),
      .length_bytes = static_cast<uint32_t>(GetLe(v.data() + 8, 4))};
}

std::string EncodePackInfo(const PackInfo& info) {
  std::string out;
  PutLe(out, info.size_bytes, 8);
  PutLe(out, info.chunk_count, 8);
  PutLe(out, static_cast<uint64_t>(info.added_unix_ms), 8);
  return out;
}

std::optional<PackInfo> DecodePackInfo(std::string_view name,
                                       std::string_view v) {
  if (v.size() != 24) return std::nullopt;
  return PackInfo{
      .pack = std::string(name),
      .size_bytes = GetLe(v.data(), 8),
      .chunk_count = GetLe(v.data() + 8, 8),
      .added_unix_ms = static_cast<int64_t>(GetLe(v.data() + 16, 8))};
}

std::string EncodeRecord(std::string_view tenant,
                         std::span<const PackEntry> entries) {
  std::string out = kRecordMagic;
  PutString(out, tenant);
  PutLe(out, entries.size(), 8);
  for (const PackEntry& e : entries) out.append(IdKey(e.id));
  return out;
}

std::optional<Record> DecodeRecord(std::string_view v) {
  const std::string_view magic = kRecordMagic;
  if (!v.starts_with(magic)) return std::nullopt;
  v.remove_prefix(magic.size());
  Record r;
  auto tenant = GetString(v);
  if (!tenant.has_value() || v.size() < 8) return std::nullopt;
  r.tenant = *std::move(tenant);
  const uint64_t n = GetLe(v.data(), 8);
  v.remove_prefix(8);
  if (v.size() != n * ChunkHash::kSize) return std::nullopt;
  r.ids.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    r.ids.push_back(IdOfKey(v.substr(i * ChunkHash::kSize, ChunkHash::kSize)));
  }
  return r;
}

std::string EncodeSession(const StoredSession& s) {
  std::string out;
  PutLe(out, s.ended, 8);
  for (const std::string* f : {&s.info.tenant, &s.info.lock_name, &s.info.host,
                               &s.info.volume, &s.info.version}) {
    PutString(out, *f);
  }
  return out;
}

std::optional<StoredSession> DecodeSession(SessionId id, std::string_view v) {
  if (v.size() < 8) return std::nullopt;
  StoredSession s;
  s.ended = GetLe(v.data(), 8);
  v.remove_prefix(8);
  s.info.id = id;
  for (std::string* f : {&s.info.tenant, &s.info.lock_name, &s.info.host,
                         &s.info.volume, &s.info.version}) {
    auto field = GetString(v);
    if (!field.has_value()) return std::nullopt;
    *f = *std::move(field);
  }
  if (!v.empty()) return std::nullopt;
  return s;
}

std::string SessionKey(SessionId id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(id));
  return absl::StrCat(kSessionPrefix, buf);
}

std::optional<uint64_t> ParseU64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace cbtd::receiver::rados_chunk_index
