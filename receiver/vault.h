// Vault: versions of volumes as immutable objects in an ObjectStore.
//
// Format 2 (docs/vault.md has the byte formats):
//   format                                 "cbtd-vault 2"
//   tenants/<tenant>/packs/<hh>/<name>.pack  chunk records, sealed packs
//   hosts/<host>/<volume>/versions/<id>.idx   one index per version
//   hosts/<host>/<volume>/protected/<id>      retention: never prune
//   hosts/<host>/<volume>/held/<id>           retention: not before a time
//   tenants/<tenant>/key-fingerprint          the tenant's key, once bound
//   host-tenants/<host>                       the host's tenant, if assigned
// plus a ChunkIndex (chunk id -> pack range, per tenant) kept by the
// backend. A tenant is the unit of deduplication and trust: chunk calls
// take the tenant, and no lookup crosses tenants. A host is its own tenant
// unless an operator assigned it to one (TenantOf, receiver/tenants.h).
// Format 1 (read, and written only by tests and `migrate`'s source):
//   chunks/<hh>/<64 hex>                 one chunk object, named by its
//                                        SHA-256, shared by every host
// Chunk object / record: "CBTC" | u8 format=1 | u8 compression (0 none,
//   1 zstd, 2 sealed) | u16 0 | u32le raw_size | u64le XXH3-64 of the
//   payload | payload. A sealed record (encrypted tenants) holds the sealed
//   payload as the stream carried it (transport/sealed_chunk.h); raw_size
//   is the plaintext's size, and only the key's holder can check more than
//   the XXH3.
//
// A version exists exactly when its index object exists; indexes are
// published atomically, last, after every chunk they reference is stored.
//
// Thread-safety: as safe as the ObjectStore and ChunkIndex (the local ones
// are fully).
#ifndef CBTD_RECEIVER_VAULT_H_
#define CBTD_RECEIVER_VAULT_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/chunk_index.h"
#include "receiver/index_stream.h"
#include "receiver/object_store.h"
#include "transport/chunk_hash.h"
#include "transport/names.h"
#include "transport/proto/stream.pb.h"
#include "transport/stream_index.h"

namespace cbtd::receiver {

using transport::ChunkHash;
using transport::VersionIndex;

struct VolumeName {
  std::string host;
  std::string volume;
  friend bool operator==(const VolumeName&, const VolumeName&) = default;
  friend auto operator<=>(const VolumeName&, const VolumeName&) = default;
};

// INVALID_ARGUMENT naming `what` ("host", "volume", "version id") unless
// `name` is 1..128 chars of [A-Za-z0-9._-] not starting with '.'.
using transport::ValidateName;

// Writers seal a pack when its records reach Vault::pack_target_bytes()
// (default kPackTargetBytes) or kPackMaxChunks records. docs/vault.md,
// "Pack size", has the measurement behind the default.
inline constexpr size_t kPackTargetBytes = 16u << 20;
inline constexpr size_t kPackMaxChunks = 4096;
// Writers make their written packs durable and index them at least every
// kSyncBatchBytes (one filesystem sync for many packs).
inline constexpr size_t kSyncBatchBytes = 256u << 20;

// A chunk as Vault::ReadStoredChunk returns it.
struct StoredChunk {
  std::string data;     // the plaintext, or the sealed payload if `sealed`
  bool sealed = false;  // stored as COMPRESSION_SEALED (encrypted tenant)
};

class Vault {
 public:
  // A format-2 vault over `store` and `index`, or a format-1 vault when
  // `index` is null. Both must outlive the vault.
  Vault(ObjectStore& store, ChunkIndex* index) : store_(store), index_(index) {}

  ObjectStore& store() { return store_; }
  // Null for format 1.
  ChunkIndex* chunk_index() { return index_; }
  int format() const { return index_ == nullptr ? 1 : 2; }

  size_t pack_target_bytes() const { return pack_target_bytes_; }
  // For measurements (tests/receiver/pack_size_tradeoff.cc).
  void set_pack_target_bytes(size_t bytes) { pack_target_bytes_ = bytes; }
  // How many bytes of written packs a writer makes durable and indexes
  // at once (default kSyncBatchBytes); tests lower it.
  size_t sync_batch_bytes() const { return sync_batch_bytes_; }
  void set_sync_batch_bytes(size_t bytes) { sync_batch_bytes_ = bytes; }

  // The tenant whose chunks `host` stores and names: the tenant the host
  // is assigned to (host-tenants/<host>), else the host itself.
  // INVALID_ARGUMENT for an invalid host name; DATA_LOSS naming the object
  // if the assignment is damaged; FAILED_PRECONDITION if the host is not
  // assigned but other hosts are assigned to the tenant of its name (an
  // unassigned host must not fall into a group by its name: the operator
  // assigns it explicitly). Assignments never change once written, so
  // they are cached; an absent one is read again on every call.
  absl::StatusOr<std::string> TenantOf(std::string_view host);

  // The tenant `host` is assigned to, nullopt if none (DATA_LOSS naming the
  // object if it does not hold a valid tenant name).
  absl::StatusOr<std::optional<std::string>> AssignedTenant(
      std::string_view host);
  // Every assignment, host -> tenant.
  absl::StatusOr<std::map<std::string, std::string>> TenantAssignments();
  // The hosts whose tenant is `tenant` (as TenantOf says): those assigned
  // to it, or, if there are none, the host of that name unless it is
  // assigned elsewhere. Sorted.
  absl::StatusOr<std::vector<std::string>> HostsOfTenant(
      std::string_view tenant);
  // Writes host-tenants/<host> (publish-if-absent) without any policy
  // check: callers are receiver/tenants.h and tests. OK if the host is
  // already assigned to `tenant`; FAILED_PRECONDITION naming both tenants
  // if it is assigned to another.
  absl::Status PublishTenantAssignment(std::string_view host,
                                       std::string_view tenant);

  // Format 1 chunk objects.
  static std::string ChunkKey(const ChunkHash& hash);
  // Format 2 packs.
  static std::string PackKey(std::string_view tenant, std::string_view pack);
  static std::string IndexKey(const VolumeName& v, std::string_view version);
  // The index's summary (ListedIndexMetadata): a cache, never the truth.
  static std::string SummaryKey(const VolumeName& v, std::string_view version);
  static std::string ProtectedKey(const VolumeName& v,
                                  std::string_view version);
  static std::string HeldKey(const VolumeName& v, std::string_view version);
  static std::string TenantKeyKey(std::string_view tenant);
  static std::string HostTenantKey(std::string_view host);

  // The fingerprint of the key `tenant` is bound to, "" if none (a tenant
  // whose versions are plaintext, or a new one). DATA_LOSS if the object
  // is not a fingerprint.
  absl::StatusOr<std::string> TenantKeyFingerprint(std::string_view tenant);
  // Binds `tenant` to `fingerprint` (publish-if-absent). OK if it already
  // is; FAILED_PRECONDITION naming both if it is bound to another key.
  absl::Status BindTenantKey(std::string_view tenant,
                             const std::string& fingerprint);

  // Whether `tenant` holds the chunk (format 1: whether the vault does).
  absl::StatusOr<bool> HasChunk(std::string_view tenant, const ChunkHash& hash);

  // The record StoreChunks stores for a verified payload.
  static std::string EncodeChunk(stream::Compression compression,
                                 uint32_t raw_size, std::string_view payload);
  // Stores encoded chunks whose payloads the caller has verified (their
  // bytes decompress to raw_size bytes hashing to the id), durably.
  // Format 2: WritePack + IndexPacks; format 1: one object each.
  // Idempotent in effect.
  absl::Status StoreChunks(
      std::string_view tenant,
      const std::vector<std::pair<ChunkHash, std::string>>& encoded);

  // Format 2, for writers that store many packs: a pack is written first
  // (WritePack: not yet durable, unknown to the index, so invisible to
  // every reader), and several written packs are then made durable with
  // one sync and recorded in the chunk index (IndexPacks). A crash in
  // between leaves unindexed packs, which GC removes.
  struct WrittenPack {
    PackInfo info;
    std::vector<PackEntry> entries;
  };
  absl::StatusOr<WrittenPack> WritePack(
      std::string_view tenant,
      const std::vector<std::pair<ChunkHash, std::string>>& encoded);
  // `session`: the receive session the packs are pinned to, or kNoSession.
  absl::Status IndexPacks(std::string_view tenant,
                          std::span<const WrittenPack> packs,
                          SessionId session = kNoSession);

  // Reads a chunk of `tenant` and checks the record checksum and the
  // content hash: DATA_LOSS naming the chunk if damaged, NOT_FOUND if the
  // tenant does not hold it. A sealed chunk (an encrypted tenant) comes
  // back as its sealed payload, checked against the record checksum only:
  // the vault has no key (open it with transport::OpenChunkPayload).
  absl::StatusOr<std::string> ReadChunk(std::string_view tenant,
                                        const ChunkHash& hash);
  // ReadChunk that also says whether the record was sealed, for callers
  // that must check it matches the version's encryption.
  absl::StatusOr<StoredChunk> ReadStoredChunk(std::string_view tenant,
                                              const ChunkHash& hash);
  // ReadStoredChunk of each of `hashes`, in order. Format 2 reads records
  // that lie next to each other in a pack with one ranged read (up to
  // kMaxReadRunBytes), which is what a restore in volume order mostly
  // asks for. The first error wins.
  absl::StatusOr<std::vector<StoredChunk>> ReadStoredChunks(
      std::string_view tenant, std::span<const ChunkHash> hashes);
  static constexpr uint64_t kMaxReadRunBytes = 8u << 20;

  // NOT_FOUND naming host/volume/version if there is no such version.
  // Holds every entry (32 bytes per chunk): for small volumes and tools;
  // the receiver's own paths stream (OpenIndex).
  absl::StatusOr<VersionIndex> ReadIndex(const VolumeName& v,
                                         std::string_view version);
  // Streams a version's index in bounded memory. Its metadata and entries
  // are unverified until IndexReader::Finish succeeds (index_stream.h).
  // NOT_FOUND naming host/volume/version if there is no such version.
  absl::StatusOr<std::unique_ptr<IndexReader>> OpenIndex(
      const VolumeName& v, std::string_view version);
  // A version's metadata, after checking the whole index object (read
  // through in bounded memory). Errors as OpenIndex, and DATA_LOSS.
  absl::StatusOr<IndexMetadata> ReadIndexMetadata(const VolumeName& v,
                                                  std::string_view version);
  // A version's metadata for a listing: from its summary
  // (index_stream.h, WriteIndexSummary) while that matches the index
  // object, else as ReadIndexMetadata, which then writes the summary. Two
  // small reads instead of the whole index (8 GiB at 16 TiB); the entries
  // are checked by whoever reads them (restore, verify, a receive).
  absl::StatusOr<IndexMetadata> ListedIndexMetadata(const VolumeName& v,
                                                    std::string_view version);
  // A writer of the new version `meta` describes; the version exists once
  // the writer's Publish succeeds (ALREADY_EXISTS if it already did).
  absl::StatusOr<std::unique_ptr<IndexWriter>> CreateIndex(
      const IndexMetadata& meta);
  // ALREADY_EXISTS if the version exists. The index's root hash must be set.
  absl::Status PublishIndex(const VersionIndex& index);
  // Deletes a version. FAILED_PRECONDITION, deleting nothing, while a
  // receive builds on it (it holds VersionLockName(v, version) shared).
  absl::Status DeleteIndex(const VolumeName& v, std::string_view version);

  // Version ids of a volume, sorted (none for an unknown volume).
  // INVALID_ARGUMENT naming "host" / "volume" for a name ValidateName
  // refuses, as every call below that takes a VolumeName.
  absl::StatusOr<std::vector<std::string>> ListVersions(const VolumeName& v);
  absl::StatusOr<std::vector<VolumeName>> ListVolumes();
  // Every version of every volume of `host`, sorted.
  absl::StatusOr<std::vector<std::pair<VolumeName, std::string>>>
  ListHostVersions(std::string_view host);

  absl::Status SetProtected(const VolumeName& v, std::string_view version,
                            bool on);
  absl::StatusOr<bool> IsProtected(const VolumeName& v,
                                   std::string_view version);
  // A hold: retention keeps `version` until `until_unix` (an NBD export's
  // lease, renewed while it serves; 0 releases it). NOT_FOUND for an
  // unknown version (unless releasing).
  absl::Status SetHeldUntil(const VolumeName& v, std::string_view version,
                            int64_t until_unix);
  // Until when `version` is held, 0 if it is not (or its record is not a
  // time: a hold only ever delays a prune).
  absl::StatusOr<int64_t> HeldUntil(const VolumeName& v,
                                    std::string_view version);

 private:
  // Where the chunk index puts `hash` of `tenant`; NOT_FOUND if nowhere.
  // NOT_FOUND: the tenant does not hold the chunk.
  static absl::Status Missing(std::string_view tenant, const ChunkHash& hash);
  absl::StatusOr<ChunkLocation> Locate(std::string_view tenant,
                                       const ChunkHash& hash);
  absl::StatusOr<StoredChunk> ReadPackedChunk(std::string_view tenant,
                                              const ChunkHash& hash);
  // Appends the chunks of `locs` (adjacent records of one pack, for
  // `hashes`) to `out`, read with one ranged read.
  absl::Status ReadPackedRun(std::string_view tenant,
                             std::span<const ChunkHash> hashes,
                             std::span<const ChunkLocation> locs,
                             std::vector<StoredChunk>& out);

  ObjectStore& store_;
  ChunkIndex* index_;
  size_t pack_target_bytes_ = kPackTargetBytes;
  size_t sync_batch_bytes_ = kSyncBatchBytes;
  std::mutex assigned_mu_;
  std::map<std::string, std::string, std::less<>> assigned_;  // host -> tenant
};

// Checks a stored chunk record (header, XXH3 of the payload) and decodes
// it (DecodePayload): DATA_LOSS naming `what` if damaged. A sealed record
// is returned as its sealed payload once its checksum and size bounds
// hold (without the key nothing more can be checked).
absl::StatusOr<std::string> DecodeChunkRecord(std::string_view record,
                                              const ChunkHash& hash,
                                              std::string_view what);
// DecodeChunkRecord, saying whether the record was sealed.
absl::StatusOr<StoredChunk> DecodeStoredRecord(std::string_view record,
                                               const ChunkHash& hash,
                                               std::string_view what);

// Decompresses and checks a chunk payload as carried in the stream or a
// chunk object: xxh3 of the payload, size and SHA-256 of the bytes.
// `what` names the chunk in errors (INVALID_ARGUMENT / DATA_LOSS per
// `damage_code`).
absl::StatusOr<std::string> DecodePayload(stream::Compression compression,
                                          uint32_t raw_size,
                                          std::string_view payload,
                                          const ChunkHash& expected,
                                          std::string_view what,
                                          absl::StatusCode damage_code);

// The store lock a receive holds shared on its base version, and a delete
// of that version takes exclusive: "version-" and 16 hex digits of a hash
// of the host, volume and version (a lock name is a single key component).
std::string VersionLockName(const VolumeName& v, std::string_view version);

// The name of the lock a receive (and a migrate) holds shared, and what
// must not run alongside receives holds exclusive: `tenant assign`, and GC
// of a format-1 vault.
inline constexpr char kGcLockName[] = "gc";
// The lock one GC of a format-2 vault holds exclusive (one GC at a time;
// it runs alongside receives, see receiver/receive_registration.h).
inline constexpr char kGcRunLockName[] = "gc-run";

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_VAULT_H_
