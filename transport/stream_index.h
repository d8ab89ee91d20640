// VersionIndex: the index of one version of a volume, as the vault stores
// it and as the sender reads it (`cbtctl send --base-index FILE`) to compute
// the new version's root hash.
//
// A version is the ordered list of its chunks' content hashes on a grid of
// `chunk_size_bytes` (the last chunk may be short). An all-zero chunk is
// recorded as the zero entry (32 zero bytes, kZeroEntry), never as the
// SHA-256 of zeros, so every producer agrees on one representation.
//
// Root hash (format 1), the identity of a version's content:
//   SHA-256( "cbtd-root-v1" 0x00
//            || u64le volume_size_bytes || u32le chunk_size_bytes
//            || entry[0] || entry[1] || ... || entry[n-1] )
//   with n = ceil(volume_size_bytes / chunk_size_bytes) and entry[i] the 32
//   raw bytes of chunk i's hash, or 32 zero bytes for a zero chunk.
//
// Encoded index object (docs/vault.md):
//   "CBTDIDX1" | u32le json_len | json metadata | n * 32 bytes entries |
//   32 bytes SHA-256 of everything before it.
// The metadata's "format" is 1 for a plaintext version (entries are
// SHA-256 of the chunks) and 2 for an encrypted one (entries are keyed
// chunk ids, "encryption" is "aes256gcm-v1" and "key_fingerprint" names
// the tenant key), so a build that predates encryption refuses it.
//
// Thread-safety: value types and pure functions; a Sha256Stream or
// RootHasher is used by one thread at a time.
#ifndef CBTD_TRANSPORT_STREAM_INDEX_H_
#define CBTD_TRANSPORT_STREAM_INDEX_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"

namespace cbtd::transport {

// The entry of an all-zero (or discarded) chunk.
inline const ChunkHash kZeroEntry{};

inline bool IsZeroEntry(const ChunkHash& h) { return h == kZeroEntry; }

// Number of chunks of a volume: ceil(volume / chunk). chunk_size_bytes > 0.
uint64_t ChunkCount(uint64_t volume_size_bytes, uint32_t chunk_size_bytes);
// Length of chunk `index` (chunk_size_bytes except a short last chunk).
uint32_t ChunkLength(uint64_t volume_size_bytes, uint32_t chunk_size_bytes,
                     uint64_t index);

// True when every byte is zero.
bool IsAllZero(std::span<const uint8_t> data);

// The index entry of a chunk's bytes: kZeroEntry if all zero, else SHA-256.
ChunkHash EntryOf(std::span<const uint8_t> data);

// See the file comment. entries.size() must equal ChunkCount(...).
ChunkHash ComputeRootHash(uint64_t volume_size_bytes, uint32_t chunk_size_bytes,
                          std::span<const ChunkHash> entries);

struct IndexStats {
  uint64_t chunk_records = 0;      // chunks whose bytes travelled
  uint64_t chunk_ref_records = 0;  // chunks sent by hash only
  uint64_t zero_chunks = 0;        // zero chunks in the stream
  uint64_t payload_bytes = 0;      // payload bytes as sent
  uint64_t raw_bytes = 0;          // uncompressed bytes of the chunks sent
  uint64_t new_objects = 0;        // chunk objects the receive stored
  uint64_t stored_bytes = 0;       // bytes of those objects
};

// Everything an index says about its version but the entries: what a
// listing, a commit result or a streaming reader's caller needs.
struct IndexMetadata {
  std::string host;
  std::string volume;
  std::string version_id;
  std::string base_version_id;  // empty for a full
  uint64_t volume_size_bytes = 0;
  uint32_t chunk_size_bytes = 0;
  int64_t created_unix_ms = 0;
  ChunkHash root_hash;  // ComputeRootHash over the entries
  IndexStats stats;
  // The public fingerprint of the tenant key whose keyed ids the entries
  // are and whose chunks are sealed (transport/tenant_key.h); empty for a
  // version stored in plaintext (entries are SHA-256).
  std::string key_fingerprint;
  bool encrypted() const { return !key_fingerprint.empty(); }
  // A member of a group version (receiver/groups.h); both empty for a
  // version of a volume backed up on its own.
  std::string group;
  std::string group_version_id;
};

// A whole index in memory: 32 bytes per chunk (512 MiB per TiB of volume at
// 64 KiB chunks). The receiver streams indexes instead
// (receiver/index_stream.h); this is for small volumes, tests and tools.
struct VersionIndex : IndexMetadata {
  std::vector<ChunkHash> entries;  // one per chunk; kZeroEntry for zeros
};

// True for 16 lowercase hex digits (TenantKey::fingerprint()).
bool IsKeyFingerprint(std::string_view s);

// SHA-256 over bytes given in pieces. Not copyable.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(const void* data, size_t size);
  // The digest; call once, after which the object is spent.
  std::array<uint8_t, ChunkHash::kSize> Finish();

 private:
  void* ctx_;  // EVP_MD_CTX, kept out of this header
};

// ComputeRootHash over entries given in order, in pieces: a volume's root
// hash without holding its entries.
class RootHasher {
 public:
  RootHasher(uint64_t volume_size_bytes, uint32_t chunk_size_bytes);
  void Add(std::span<const ChunkHash> entries);
  // Adds `count` zero entries (kZeroEntry).
  void AddZeros(uint64_t count);
  // Call once, after every entry was added.
  ChunkHash Finish();

 private:
  Sha256Stream sha_;
};

// The encoded index is head | entries | checksum. The head is the magic,
// u32le json_len and the metadata JSON; kIndexPrefixBytes of it come
// before the JSON. A JSON longer than kMaxIndexMetadataBytes is refused as
// damage (real ones are under 1 KiB), so a hostile length cannot make a
// reader allocate gigabytes.
inline constexpr size_t kIndexPrefixBytes = 12;
inline constexpr uint32_t kMaxIndexMetadataBytes = 1u << 20;

// The head of an index of `chunk_count` entries described by `meta` (its
// root_hash and stats must be final).
std::string EncodeIndexHead(const IndexMetadata& meta, uint64_t chunk_count);
// The JSON length from the first kIndexPrefixBytes of an index. DATA_LOSS
// naming `what` for a bad magic or a length over kMaxIndexMetadataBytes.
absl::StatusOr<uint32_t> ParseIndexPrefix(std::string_view prefix,
                                          std::string_view what);
// Parses and checks the metadata JSON (format, encryption, chunk size > 0).
// Errors: DATA_LOSS naming `what`; FAILED_PRECONDITION for a format this
// build does not read. Nothing here is trusted until the whole object's
// checksum is checked (DecodeIndex, or a streaming reader's Finish).
absl::StatusOr<IndexMetadata> ParseIndexMetadata(std::string_view json,
                                                 std::string_view what);

// Serializes `index` (its root_hash must already be set).
std::string EncodeIndex(const VersionIndex& index);

// Parses an encoded index; checks the magic, the trailing checksum, the
// entry count and that the root hash matches the entries. `what` names the
// object in error messages. Errors: DATA_LOSS for a damaged object.
absl::StatusOr<VersionIndex> DecodeIndex(std::string_view data,
                                         std::string_view what);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_STREAM_INDEX_H_
