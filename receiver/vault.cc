#include "receiver/vault.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_order.h"
#include "receiver/pack.h"
#include "transport/sealed_chunk.h"

namespace cbtd::receiver {
namespace {

using common::GetLe;
using common::PutLe;

constexpr char kChunkMagic[4] = {'C', 'B', 'T', 'C'};
constexpr size_t kChunkHeaderBytes = 20;
constexpr std::string_view kIndexSuffix = ".idx";

std::string VolumePrefix(const VolumeName& v) {
  return absl::StrCat("hosts/", v.host, "/", v.volume);
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Describe(const VolumeName& v, std::string_view version) {
  return absl::StrCat(v.host, "/", v.volume, "@", std::string(version));
}

}  // namespace

// Names become path components: refuse them by name before a key is made.
static absl::Status ValidateVolume(const VolumeName& v) {
  if (auto s = ValidateName("host", v.host); !s.ok()) return s;
  return ValidateName("volume", v.volume);
}

absl::StatusOr<std::string> DecodePayload(stream::Compression compression,
                                          uint32_t raw_size,
                                          std::string_view payload,
                                          const ChunkHash& expected,
                                          std::string_view what,
                                          absl::StatusCode damage_code) {
  auto fail = [&](std::string_view why) {
    return absl::Status(
        damage_code, absl::StrCat(std::string(what), ": ", std::string(why)));
  };
  std::string raw;
  switch (compression) {
    case stream::COMPRESSION_NONE:
      if (payload.size() != raw_size) {
        return fail(absl::StrCat("payload is ", payload.size(),
                                 " bytes, expected ", raw_size));
      }
      raw.assign(payload);
      break;
    case stream::COMPRESSION_ZSTD: {
      // Never trust the frame's own size field: decompress into exactly
      // raw_size bytes, so a hostile payload cannot make us allocate more.
      const unsigned long long frame =
          ZSTD_getFrameContentSize(payload.data(), payload.size());
      if (frame != raw_size) {
        return fail(absl::StrCat("zstd frame holds ", frame,
                                 " bytes, expected ", raw_size));
      }
      raw.resize(raw_size);
      const size_t n = ZSTD_decompress(raw.data(), raw.size(), payload.data(),
                                       payload.size());
      if (ZSTD_isError(n) || n != raw_size) {
        return fail(absl::StrCat(
            "zstd payload does not decompress: ",
            ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output"));
      }
      break;
    }
    default:
      return fail(
          absl::StrCat("unknown compression ", static_cast<int>(compression)));
  }
  const ChunkHash actual = ChunkHash::Sha256(
      {reinterpret_cast<const uint8_t*>(raw.data()), raw.size()});
  if (actual != expected) {
    return fail(absl::StrCat("content hash is ", actual.ToHex(), ", expected ",
                             expected.ToHex()));
  }
  return raw;
}

std::string Vault::ChunkKey(const ChunkHash& hash) {
  const std::string hex = hash.ToHex();
  return absl::StrCat("chunks/", hex.substr(0, 2), "/", hex);
}

std::string Vault::IndexKey(const VolumeName& v, std::string_view version) {
  return absl::StrCat(VolumePrefix(v), "/versions/", std::string(version),
                      std::string(kIndexSuffix));
}

std::string Vault::SummaryKey(const VolumeName& v, std::string_view version) {
  return absl::StrCat(VolumePrefix(v), "/summaries/", std::string(version));
}

std::string Vault::ProtectedKey(const VolumeName& v, std::string_view version) {
  return absl::StrCat(VolumePrefix(v), "/protected/", std::string(version));
}

std::string Vault::HeldKey(const VolumeName& v, std::string_view version) {
  return absl::StrCat(VolumePrefix(v), "/held/", std::string(version));
}

std::string Vault::TenantKeyKey(std::string_view tenant) {
  return absl::StrCat("tenants/", std::string(tenant), "/key-fingerprint");
}

absl::StatusOr<std::string> Vault::TenantKeyFingerprint(
    std::string_view tenant) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  const std::string key = TenantKeyKey(tenant);
  auto data = store_.Get(key);
  if (absl::IsNotFound(data.status())) return std::string();
  if (!data.ok()) return data.status();
  std::string fp = *data;
  if (!fp.empty() && fp.back() == '\n') fp.pop_back();
  if (!transport::IsKeyFingerprint(fp)) {
    return absl::DataLossError(absl::StrCat(
        "vault object ", key,
        " is damaged: it should hold the tenant's key fingerprint (16 hex "
        "digits); restore it from a backup of the vault"));
  }
  return fp;
}

absl::Status Vault::BindTenantKey(std::string_view tenant,
                                  const std::string& fingerprint) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  if (!transport::IsKeyFingerprint(fingerprint)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", fingerprint, "' is not a key fingerprint"));
  }
  absl::Status s = store_.Publish(TenantKeyKey(tenant), fingerprint + "\n");
  if (!absl::IsAlreadyExists(s)) return s;
  auto bound = TenantKeyFingerprint(tenant);
  if (!bound.ok()) return bound.status();
  if (*bound == fingerprint) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "tenant '", std::string(tenant), "' is bound to key ", *bound,
      ", not to key ", fingerprint,
      ": use the key this host's backups were made with (cbtctl key "
      "import)"));
}

std::string Vault::HostTenantKey(std::string_view host) {
  return absl::StrCat("host-tenants/", std::string(host));
}

absl::StatusOr<std::optional<std::string>> Vault::AssignedTenant(
    std::string_view host) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  {
    std::lock_guard<std::mutex> l(assigned_mu_);
    if (auto it = assigned_.find(host); it != assigned_.end()) {
      return it->second;
    }
  }
  const std::string key = HostTenantKey(host);
  auto data = store_.Get(key);
  if (absl::IsNotFound(data.status())) return std::nullopt;
  if (!data.ok()) return data.status();
  std::string tenant = *data;
  if (!tenant.empty() && tenant.back() == '\n') tenant.pop_back();
  if (!ValidateName("tenant", tenant).ok()) {
    return absl::DataLossError(absl::StrCat(
        "vault object ", key,
        " is damaged: it should hold the name of the tenant host '",
        std::string(host),
        "' is assigned to; restore it from a backup of the vault (its "
        "versions name chunks of that tenant, no other will do)"));
  }
  std::lock_guard<std::mutex> l(assigned_mu_);
  assigned_.emplace(std::string(host), tenant);
  return tenant;
}

absl::StatusOr<std::map<std::string, std::string>> Vault::TenantAssignments() {
  auto keys = store_.List("host-tenants");
  if (!keys.ok()) return keys.status();
  std::map<std::string, std::string> out;
  for (const std::string& k : *keys) {
    const std::string host = k.substr(k.find('/') + 1);
    // Not an assignment (a deeper key): not ours to interpret.
    if (host.find('/') != std::string::npos) continue;
    auto tenant = AssignedTenant(host);
    if (!tenant.ok()) return tenant.status();
    if (tenant->has_value()) out.emplace(host, **tenant);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Vault::HostsOfTenant(
    std::string_view tenant) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  auto all = TenantAssignments();
  if (!all.ok()) return all.status();
  std::set<std::string> hosts;
  for (const auto& [host, t] : *all) {
    if (t == tenant) hosts.insert(host);
  }
  // The host of the tenant's name, unassigned, is in it only while nobody
  // else is (TenantOf refuses it otherwise).
  if (hosts.empty() && !all->contains(std::string(tenant))) {
    hosts.insert(std::string(tenant));
  }
  return std::vector<std::string>(hosts.begin(), hosts.end());
}

absl::StatusOr<std::string> Vault::TenantOf(std::string_view host) {
  auto assigned = AssignedTenant(host);
  if (!assigned.ok()) return assigned.status();
  if (assigned->has_value()) return **assigned;
  // Unassigned: the host's own tenant, unless that name is a group.
  auto all = TenantAssignments();
  if (!all.ok()) return all.status();
  std::vector<std::string> members;
  for (const auto& [other, t] : *all) {
    if (t == host) members.push_back(other);
  }
  if (!members.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "host '", std::string(host), "' is assigned to no tenant, but hosts ",
        absl::StrJoin(members, ", "), " are assigned to tenant '",
        std::string(host),
        "' of the same name: a host joins a group only when the operator "
        "says so (cbt-receiver tenant assign --host ",
        std::string(host), " --tenant TENANT, with --join-existing to join '",
        std::string(host), "'), or back it up under another host name"));
  }
  return std::string(host);
}

absl::Status Vault::PublishTenantAssignment(std::string_view host,
                                            std::string_view tenant) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  absl::Status s = store_.Publish(HostTenantKey(host),
                                  absl::StrCat(std::string(tenant), "\n"));
  if (!absl::IsAlreadyExists(s)) return s;
  auto assigned = AssignedTenant(host);
  if (!assigned.ok()) return assigned.status();
  if (assigned->has_value() && **assigned == tenant) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "host '", std::string(host), "' is already assigned to tenant '",
      assigned->value_or(""), "', not '", std::string(tenant), "'"));
}

std::string Vault::PackKey(std::string_view tenant, std::string_view pack) {
  return absl::StrCat("tenants/", std::string(tenant), "/packs/",
                      std::string(pack.substr(0, 2)), "/", std::string(pack),
                      ".pack");
}

absl::StatusOr<bool> Vault::HasChunk(std::string_view tenant,
                                     const ChunkHash& hash) {
  if (index_ == nullptr) return store_.Exists(ChunkKey(hash));
  auto loc = index_->Find(tenant, hash);
  if (!loc.ok()) return loc.status();
  return loc->has_value();
}

std::string Vault::EncodeChunk(stream::Compression compression,
                               uint32_t raw_size, std::string_view payload) {
  std::string obj(kChunkMagic, sizeof(kChunkMagic));
  obj.push_back(1);  // format
  obj.push_back(static_cast<char>(compression));
  PutLe(obj, 0, 2);
  PutLe(obj, raw_size, 4);
  PutLe(obj, XXH3_64bits(payload.data(), payload.size()), 8);
  obj.append(payload);
  return obj;
}

absl::Status Vault::StoreChunks(
    std::string_view tenant,
    const std::vector<std::pair<ChunkHash, std::string>>& encoded) {
  if (encoded.empty()) return absl::OkStatus();
  if (index_ != nullptr) {
    auto pack = WritePack(tenant, encoded);
    if (!pack.ok()) return pack.status();
    return IndexPacks(tenant, {&*pack, 1});
  }
  for (const auto& [hash, obj] : encoded) {
    const std::string_view part = obj;
    if (auto s = store_.PutUnsynced(ChunkKey(hash), {&part, 1}); !s.ok()) {
      return s;
    }
  }
  return store_.SyncAll();
}

absl::StatusOr<Vault::WrittenPack> Vault::WritePack(
    std::string_view tenant,
    const std::vector<std::pair<ChunkHash, std::string>>& encoded) {
  if (auto s = ValidateName("tenant", tenant); !s.ok()) return s;
  PackBuilder builder;
  for (const auto& [hash, record] : encoded) builder.Add(hash, record);
  WrittenPack out;
  out.entries = builder.entries();
  out.info.pack = NewPackName();
  out.info.chunk_count = out.entries.size();
  out.info.size_bytes = builder.size_bytes();
  out.info.added_unix_ms = NowUnixMs();
  if (auto s =
          store_.PutUnsynced(PackKey(tenant, out.info.pack), builder.Seal());
      !s.ok()) {
    return s;
  }
  return out;
}

// The packs are durable before the index names them, so a chunk the index
// knows is always readable.
absl::Status Vault::IndexPacks(std::string_view tenant,
                               std::span<const WrittenPack> packs,
                               SessionId session) {
  if (packs.empty()) return absl::OkStatus();
  if (auto s = store_.SyncAll(); !s.ok()) return s;
  for (const WrittenPack& p : packs) {
    if (auto s = index_->AddPack(tenant, p.info, p.entries, session); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DecodeChunkRecord(std::string_view record,
                                              const ChunkHash& hash,
                                              std::string_view what) {
  auto stored = DecodeStoredRecord(record, hash, what);
  if (!stored.ok()) return stored.status();
  return std::move(stored->data);
}

absl::StatusOr<StoredChunk> DecodeStoredRecord(std::string_view record,
                                               const ChunkHash& hash,
                                               std::string_view what) {
  if (record.size() < kChunkHeaderBytes ||
      std::memcmp(record.data(), kChunkMagic, sizeof(kChunkMagic)) != 0 ||
      record[4] != 1 || record[6] != 0 || record[7] != 0) {
    return absl::DataLossError(
        absl::StrCat(std::string(what), " is damaged: bad header"));
  }
  const auto compression = static_cast<stream::Compression>(record[5]);
  const auto raw_size = static_cast<uint32_t>(GetLe(record.data() + 8, 4));
  const uint64_t sum = GetLe(record.data() + 12, 8);
  const std::string_view payload = record.substr(kChunkHeaderBytes);
  if (XXH3_64bits(payload.data(), payload.size()) != sum) {
    return absl::DataLossError(absl::StrCat(
        std::string(what), " is damaged: checksum of the stored bytes"));
  }
  if (compression == stream::COMPRESSION_SEALED) {
    if (payload.size() < transport::kMinSealedPayloadBytes ||
        payload.size() > transport::MaxSealedPayloadBytes(raw_size)) {
      return absl::DataLossError(absl::StrCat(
          std::string(what), " is damaged: sealed payload of ", payload.size(),
          " bytes for ", raw_size, " plaintext bytes"));
    }
    return StoredChunk{std::string(payload), true};
  }
  auto raw = DecodePayload(compression, raw_size, payload, hash,
                           absl::StrCat(std::string(what), " is damaged"),
                           absl::StatusCode::kDataLoss);
  if (!raw.ok()) return raw.status();
  return StoredChunk{*std::move(raw), false};
}

absl::StatusOr<std::string> Vault::ReadChunk(std::string_view tenant,
                                             const ChunkHash& hash) {
  auto stored = ReadStoredChunk(tenant, hash);
  if (!stored.ok()) return stored.status();
  return std::move(stored->data);
}

absl::StatusOr<StoredChunk> Vault::ReadStoredChunk(std::string_view tenant,
                                                   const ChunkHash& hash) {
  if (index_ != nullptr) return ReadPackedChunk(tenant, hash);
  const std::string key = ChunkKey(hash);
  auto obj = store_.Get(key);
  if (!obj.ok()) {
    if (absl::IsNotFound(obj.status())) {
      return absl::NotFoundError(
          absl::StrCat("chunk ", hash.ToHex(), " is missing from the vault"));
    }
    return obj.status();
  }
  return DecodeStoredRecord(*obj, hash, absl::StrCat("chunk object ", key));
}

absl::StatusOr<ChunkLocation> Vault::Locate(std::string_view tenant,
                                            const ChunkHash& hash) {
  auto loc = index_->Find(tenant, hash);
  if (!loc.ok()) return loc.status();
  if (!loc->has_value()) return Missing(tenant, hash);
  return **std::move(loc);
}

absl::Status Vault::Missing(std::string_view tenant, const ChunkHash& hash) {
  return absl::NotFoundError(absl::StrCat(
      "chunk ", hash.ToHex(), " is missing from the vault (tenant '",
      std::string(tenant), "')"));
}

// A GC repack moves live chunks to a new pack and then deletes the old
// one: a reader that looked up the old place just before may find it gone,
// and then finds the new place on a second lookup.
absl::StatusOr<StoredChunk> Vault::ReadPackedChunk(std::string_view tenant,
                                                   const ChunkHash& hash) {
  for (int attempt = 0;; ++attempt) {
    auto loc = Locate(tenant, hash);
    if (!loc.ok()) return loc.status();
    const std::string key = PackKey(tenant, loc->pack);
    auto record = store_.GetRange(key, loc->offset_bytes, loc->length_bytes);
    if (absl::IsNotFound(record.status()) && attempt == 0) continue;
    if (absl::IsNotFound(record.status())) {
      return absl::NotFoundError(
          absl::StrCat("chunk ", hash.ToHex(), " is indexed in pack ", key,
                       ", which is missing from the vault"));
    }
    if (!record.ok()) return record.status();
    return DecodeStoredRecord(
        *record, hash,
        absl::StrCat("chunk ", hash.ToHex(), " in pack ", key, " at byte ",
                     loc->offset_bytes));
  }
}

absl::StatusOr<std::vector<StoredChunk>> Vault::ReadStoredChunks(
    std::string_view tenant, std::span<const ChunkHash> hashes) {
  std::vector<StoredChunk> out;
  out.reserve(hashes.size());
  if (index_ == nullptr) {
    for (const ChunkHash& h : hashes) {
      auto one = ReadStoredChunk(tenant, h);
      if (!one.ok()) return one.status();
      out.push_back(*std::move(one));
    }
    return out;
  }
  auto found = index_->FindMany(tenant, hashes);
  if (!found.ok()) return found.status();
  std::vector<ChunkLocation> locs;
  locs.reserve(hashes.size());
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (!(*found)[i].has_value()) return Missing(tenant, hashes[i]);
    locs.push_back(*std::move((*found)[i]));
  }
  // Runs of records that follow each other in one pack.
  for (size_t first = 0; first < locs.size();) {
    size_t end = first + 1;
    uint64_t run_bytes = locs[first].length_bytes;
    while (end < locs.size() && locs[end].pack == locs[first].pack &&
           locs[end].offset_bytes ==
               locs[end - 1].offset_bytes + locs[end - 1].length_bytes &&
           run_bytes + locs[end].length_bytes <= kMaxReadRunBytes) {
      run_bytes += locs[end].length_bytes;
      ++end;
    }
    if (auto s =
            ReadPackedRun(tenant, hashes.subspan(first, end - first),
                          std::span(locs).subspan(first, end - first), out);
        !s.ok()) {
      return s;
    }
    first = end;
  }
  return out;
}

absl::Status Vault::ReadPackedRun(std::string_view tenant,
                                  std::span<const ChunkHash> hashes,
                                  std::span<const ChunkLocation> locs,
                                  std::vector<StoredChunk>& out) {
  const std::string key = PackKey(tenant, locs.front().pack);
  const uint64_t start = locs.front().offset_bytes;
  const uint64_t length =
      locs.back().offset_bytes + locs.back().length_bytes - start;
  // Kept per thread: restore workers read many runs.
  thread_local std::string run;
  const absl::Status read =
      store_.GetRangeInto(key, start, static_cast<uint32_t>(length), run);
  if (absl::IsNotFound(read)) {
    // A GC repack moved them meanwhile: look each one up again.
    for (const ChunkHash& h : hashes) {
      auto one = ReadPackedChunk(tenant, h);
      if (!one.ok()) return one.status();
      out.push_back(*std::move(one));
    }
    return absl::OkStatus();
  }
  if (!read.ok()) return read;
  for (size_t k = 0; k < locs.size(); ++k) {
    const std::string_view record = std::string_view(run).substr(
        locs[k].offset_bytes - start, locs[k].length_bytes);
    auto chunk = DecodeStoredRecord(
        record, hashes[k],
        absl::StrCat("chunk ", hashes[k].ToHex(), " in pack ", key, " at byte ",
                     locs[k].offset_bytes));
    if (!chunk.ok()) return chunk.status();
    out.push_back(*std::move(chunk));
  }
  return absl::OkStatus();
}

absl::StatusOr<VersionIndex> Vault::ReadIndex(const VolumeName& v,
                                              std::string_view version) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  const std::string key = IndexKey(v, version);
  auto data = store_.Get(key);
  if (!data.ok()) {
    if (absl::IsNotFound(data.status())) {
      return absl::NotFoundError(absl::StrCat("version ", Describe(v, version),
                                              " does not exist in the vault"));
    }
    return data.status();
  }
  return transport::DecodeIndex(*data, key);
}

absl::StatusOr<std::unique_ptr<IndexReader>> Vault::OpenIndex(
    const VolumeName& v, std::string_view version) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  auto reader = IndexReader::Open(store_, IndexKey(v, version));
  if (absl::IsNotFound(reader.status())) {
    return absl::NotFoundError(absl::StrCat("version ", Describe(v, version),
                                            " does not exist in the vault"));
  }
  return reader;
}

absl::StatusOr<IndexMetadata> Vault::ReadIndexMetadata(
    const VolumeName& v, std::string_view version) {
  auto reader = OpenIndex(v, version);
  if (!reader.ok()) return reader.status();
  if (absl::Status s = (*reader)->Finish(); !s.ok()) return s;
  return (*reader)->metadata();
}

absl::StatusOr<IndexMetadata> Vault::ListedIndexMetadata(
    const VolumeName& v, std::string_view version) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  const std::string key = IndexKey(v, version);
  const std::string summary = SummaryKey(v, version);
  if (auto meta = ReadIndexSummary(store_, summary, key)) return *meta;
  auto meta = ReadIndexMetadata(v, version);
  // A first-format vault is read-only.
  if (meta.ok() && format() != 1) {
    SummarizeCheckedIndex(store_, summary, key, *meta);
  }
  return meta;
}

absl::StatusOr<std::unique_ptr<IndexWriter>> Vault::CreateIndex(
    const IndexMetadata& meta) {
  const VolumeName v{meta.host, meta.volume};
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", meta.version_id); !s.ok()) return s;
  auto writer = IndexWriter::Create(store_, IndexKey(v, meta.version_id), meta);
  if (writer.ok()) (*writer)->set_summary_key(SummaryKey(v, meta.version_id));
  return writer;
}

absl::Status Vault::PublishIndex(const VersionIndex& index) {
  const VolumeName v{index.host, index.volume};
  const std::string encoded = EncodeIndex(index);
  absl::Status s = store_.Publish(IndexKey(v, index.version_id), encoded);
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "version ", Describe(v, index.version_id), " already exists"));
  }
  if (s.ok()) {
    // Best effort, as IndexWriter::Publish.
    (void)WriteIndexSummary(
        store_, SummaryKey(v, index.version_id),
        transport::EncodeIndexHead(index, index.entries.size()),
        encoded.size());
  }
  return s;
}

std::string VersionLockName(const VolumeName& v, std::string_view version) {
  std::string key = absl::StrCat(v.host, std::string(1, '\0'), v.volume,
                                 std::string(1, '\0'), std::string(version));
  return absl::StrCat("version-", absl::Hex(XXH3_64bits(key.data(), key.size()),
                                            absl::kZeroPad16));
}

absl::Status Vault::DeleteIndex(const VolumeName& v, std::string_view version) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  const std::string lock_name = VersionLockName(v, version);
  auto lock = store_.Lock(lock_name, LockMode::kExclusive, /*wait=*/false);
  if (absl::IsUnavailable(lock.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version ", Describe(v, version),
        " is the base of a receive running now; it was kept: delete it "
        "after the receive ends"));
  }
  if (!lock.ok()) return lock.status();
  if (auto s = store_.Delete(ProtectedKey(v, version)); !s.ok()) return s;
  if (auto s = store_.Delete(HeldKey(v, version)); !s.ok()) return s;
  if (auto s = store_.Delete(IndexKey(v, version)); !s.ok()) return s;
  // After the index: a summary without its index describes nothing.
  if (auto s = store_.Delete(SummaryKey(v, version)); !s.ok()) return s;
  // Still held: a receive that opens the lock file now finds the version
  // gone once it has the lock.
  return store_.DeleteLock(lock_name);
}

absl::StatusOr<std::vector<std::string>> Vault::ListVersions(
    const VolumeName& v) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  const std::string prefix = VolumePrefix(v) + "/versions";
  auto keys = store_.List(prefix);
  if (!keys.ok()) return keys.status();
  std::vector<std::string> out;
  for (const std::string& k : *keys) {
    if (k.size() <= prefix.size() + 1 + kIndexSuffix.size() ||
        k.compare(k.size() - kIndexSuffix.size(), kIndexSuffix.size(),
                  kIndexSuffix) != 0) {
      continue;
    }
    out.push_back(k.substr(prefix.size() + 1,
                           k.size() - prefix.size() - 1 - kIndexSuffix.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<VolumeName>> Vault::ListVolumes() {
  auto keys = store_.List("hosts");
  if (!keys.ok()) return keys.status();
  std::set<VolumeName> vols;
  for (const std::string& k : *keys) {
    // hosts/<host>/<volume>/versions/<id>.idx
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t end; (end = k.find('/', start)) != std::string::npos;
         start = end + 1) {
      parts.push_back(k.substr(start, end - start));
    }
    if (parts.size() == 4 && parts[3] == "versions") {
      vols.insert(VolumeName{parts[1], parts[2]});
    }
  }
  return std::vector<VolumeName>(vols.begin(), vols.end());
}

absl::StatusOr<std::vector<std::pair<VolumeName, std::string>>>
Vault::ListHostVersions(std::string_view host) {
  if (auto s = ValidateName("host", host); !s.ok()) return s;
  const std::string prefix = absl::StrCat("hosts/", std::string(host));
  auto keys = store_.List(prefix);
  if (!keys.ok()) return keys.status();
  std::vector<std::pair<VolumeName, std::string>> out;
  for (const std::string& k : *keys) {
    // hosts/<host>/<volume>/versions/<id>.idx
    const size_t vol_end = k.find('/', prefix.size() + 1);
    if (vol_end == std::string::npos) continue;
    const std::string_view rest = std::string_view(k).substr(vol_end);
    constexpr std::string_view kDir = "/versions/";
    if (rest.rfind(kDir, 0) != 0 ||
        rest.size() <= kDir.size() + kIndexSuffix.size() ||
        rest.substr(rest.size() - kIndexSuffix.size()) != kIndexSuffix ||
        rest.find('/', kDir.size()) != std::string_view::npos) {
      continue;
    }
    out.emplace_back(
        VolumeName{std::string(host),
                   k.substr(prefix.size() + 1, vol_end - prefix.size() - 1)},
        std::string(rest.substr(
            kDir.size(), rest.size() - kDir.size() - kIndexSuffix.size())));
  }
  return out;
}

absl::Status Vault::SetProtected(const VolumeName& v, std::string_view version,
                                 bool on) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  if (!on) return store_.Delete(ProtectedKey(v, version));
  auto exists = store_.Exists(IndexKey(v, version));
  if (!exists.ok()) return exists.status();
  if (!*exists) {
    return absl::NotFoundError(absl::StrCat("version ", Describe(v, version),
                                            " does not exist in the vault"));
  }
  return store_.Put(ProtectedKey(v, version), "protected\n");
}

absl::Status Vault::SetHeldUntil(const VolumeName& v, std::string_view version,
                                 int64_t until_unix) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  if (until_unix <= 0) return store_.Delete(HeldKey(v, version));
  auto exists = store_.Exists(IndexKey(v, version));
  if (!exists.ok()) return exists.status();
  if (!*exists) {
    return absl::NotFoundError(absl::StrCat("version ", Describe(v, version),
                                            " does not exist in the vault"));
  }
  return store_.Put(HeldKey(v, version), absl::StrCat(until_unix, "\n"));
}

absl::StatusOr<int64_t> Vault::HeldUntil(const VolumeName& v,
                                         std::string_view version) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  auto text = store_.Get(HeldKey(v, version));
  if (absl::IsNotFound(text.status())) return 0;
  if (!text.ok()) return text.status();
  int64_t until = 0;
  std::string_view t = *text;
  if (!t.empty() && t.back() == '\n') t.remove_suffix(1);
  if (!absl::SimpleAtoi(std::string(t), &until)) return 0;
  return until;
}

absl::StatusOr<bool> Vault::IsProtected(const VolumeName& v,
                                        std::string_view version) {
  if (auto s = ValidateVolume(v); !s.ok()) return s;
  if (auto s = ValidateName("version id", version); !s.ok()) return s;
  return store_.Exists(ProtectedKey(v, version));
}

}  // namespace cbtd::receiver
