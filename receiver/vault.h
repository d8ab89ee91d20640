// Vault: versions of volumes as immutable objects in an ObjectStore.
//
// Layout (docs/vault.md has the byte formats):
//   chunks/<hh>/<64 hex>                 one chunk, named by its SHA-256
//   hosts/<host>/<volume>/versions/<id>.idx   one index per version
//   hosts/<host>/<volume>/protected/<id>      retention: never prune
// Chunk object: "CBTC" | u8 format=1 | u8 compression (0 none, 1 zstd) |
//   u16 0 | u32le raw_size | u64le XXH3-64 of the payload | payload.
//
// A version exists exactly when its index object exists; indexes are
// published atomically, last, after every chunk they reference is stored.
//
// Thread-safety: as safe as the ObjectStore (the local one is fully).
#ifndef CBTD_RECEIVER_VAULT_H_
#define CBTD_RECEIVER_VAULT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "receiver/object_store.h"
#include "transport/chunk_hash.h"
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
absl::Status ValidateName(std::string_view what, std::string_view name);

class Vault {
 public:
  // `store` must outlive the vault.
  explicit Vault(ObjectStore& store) : store_(store) {}

  ObjectStore& store() { return store_; }

  static std::string ChunkKey(const ChunkHash& hash);
  static std::string IndexKey(const VolumeName& v, std::string_view version);
  static std::string ProtectedKey(const VolumeName& v,
                                  std::string_view version);

  absl::StatusOr<bool> HasChunk(const ChunkHash& hash);

  // Stores a chunk whose payload has been verified by the caller (its bytes
  // decompress to raw_size bytes hashing to `hash`). Returns the stored
  // object's size. Idempotent.
  absl::StatusOr<uint64_t> PutChunk(const ChunkHash& hash,
                                    stream::Compression compression,
                                    uint32_t raw_size,
                                    std::string_view payload);

  // The object PutChunk would store, for StoreChunks.
  static std::string EncodeChunk(stream::Compression compression,
                                 uint32_t raw_size, std::string_view payload);
  // Stores many encoded chunks at once (ObjectStore::PutMany: two
  // filesystem syncs for the batch). Idempotent.
  absl::Status StoreChunks(
      const std::vector<std::pair<ChunkHash, std::string>>& encoded);

  // Reads a chunk and checks the object checksum and the content hash:
  // DATA_LOSS naming the chunk if damaged, NOT_FOUND if missing.
  absl::StatusOr<std::string> ReadChunk(const ChunkHash& hash);

  // NOT_FOUND naming host/volume/version if there is no such version.
  absl::StatusOr<VersionIndex> ReadIndex(const VolumeName& v,
                                         std::string_view version);
  // ALREADY_EXISTS if the version exists. The index's root hash must be set.
  absl::Status PublishIndex(const VersionIndex& index);
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

 private:
  ObjectStore& store_;
};

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

// The name of the lock a receive holds shared and GC holds exclusive.
inline constexpr char kGcLockName[] = "gc";

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_VAULT_H_
