// Vault format 2 cryptography on the sending host: keyed chunk ids and
// authenticated encryption of chunk payloads and version metadata, all
// under one tenant's key (transport/tenant_key.h). The receiver stores
// what comes out and can neither read it nor confirm guessed content.
//
// Chunk id: HMAC-SHA-256(id_key, plaintext chunk), a ChunkHash. Equal
// chunks of one tenant get equal ids (deduplication); the same chunk gets
// unrelated ids under two keys.
//
// Sealed object (format 1), for chunks and metadata alike:
//   offset   size  field
//   0        1     format version, 1
//   1        8     fingerprint of the key (TenantKey::fingerprint_bytes)
//   9        12    nonce, random per seal
//   21       n     AES-256-GCM ciphertext of the n plaintext bytes
//   21+n     16    GCM tag
// kSealOverhead = 37 bytes. The AAD is the 21 header bytes followed by the
// chunk id's 32 bytes (chunks) or the context label (metadata), so a
// sealed object opens only under the id or context it was sealed for.
//
// Keys and nonces: a chunk is sealed under its own key, HMAC-SHA-256(
// data_key, id), with a random 96-bit nonce. GCM's limit of about 2^32
// random nonces per key then applies per chunk, not per vault, so no vault
// size makes a nonce repeat likely (a repeat would expose plaintext and
// allow forgeries). Metadata (a handful of objects per version) is sealed
// under meta_key directly with a random nonce.
//
// Errors from Open* (choose what to do by the code):
//   FAILED_PRECONDITION  sealed under another key (by its fingerprint):
//                        load the key that made the backup
//   DATA_LOSS            truncated, unknown format version, or it does not
//                        authenticate (damaged, or stored under another
//                        id / context): the stored copy is bad
//   INTERNAL             OpenSSL failed (also from Seal* and KeyedChunkId,
//                        e.g. the random number generator)
// Nothing that fails authentication is returned.
//
// Thread-safety: ChunkCipher holds reusable OpenSSL contexts and is not
// thread-safe; use one per thread (Create is cheap, a few microseconds).
// The free functions create one per call: fine for tests and one-off
// objects, not for the per-chunk hot path.
#ifndef CBTD_TRANSPORT_CHUNK_CIPHER_H_
#define CBTD_TRANSPORT_CHUNK_CIPHER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "transport/chunk_hash.h"
#include "transport/tenant_key.h"

namespace cbtd::transport {

// Bytes a sealed object has beyond its plaintext.
inline constexpr size_t kSealOverhead = 1 + 8 + 12 + 16;

// The bytes of a std::string or string_view (protobuf `bytes` fields).
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class ChunkCipher {
 public:
  // INTERNAL if OpenSSL lacks AES-256-GCM or HMAC.
  static absl::StatusOr<ChunkCipher> Create(const TenantKey& key);

  ChunkCipher(ChunkCipher&&) noexcept;
  ChunkCipher& operator=(ChunkCipher&&) noexcept;
  ~ChunkCipher();

  // HMAC-SHA-256(id_key, plaintext).
  absl::StatusOr<ChunkHash> KeyedChunkId(std::span<const uint8_t> plaintext);

  // Seals a chunk payload (compressed or not) for the chunk `id`. The
  // result is payload.size() + kSealOverhead bytes.
  absl::StatusOr<std::string> SealChunk(const ChunkHash& id,
                                        std::span<const uint8_t> payload);
  // The payload, if `sealed` was sealed by SealChunk under this key for
  // this id and is intact; the errors above otherwise.
  absl::StatusOr<std::string> OpenChunk(const ChunkHash& id,
                                        std::span<const uint8_t> sealed);

  // The same for small objects under meta_key, bound to `context` (e.g.
  // "host/volume@version" and what the object is), which the reader must
  // give again.
  absl::StatusOr<std::string> SealMetadata(std::string_view context,
                                           std::span<const uint8_t> plaintext);
  absl::StatusOr<std::string> OpenMetadata(std::string_view context,
                                           std::span<const uint8_t> sealed);

 private:
  struct State;
  explicit ChunkCipher(std::unique_ptr<State> state);

  absl::StatusOr<std::array<uint8_t, 32>> ChunkKey(const ChunkHash& id);
  absl::StatusOr<std::string> Seal(std::span<const uint8_t, 32> key,
                                   std::span<const uint8_t> aad,
                                   std::span<const uint8_t> plaintext);
  absl::StatusOr<std::string> Open(std::span<const uint8_t, 32> key,
                                   std::span<const uint8_t> aad,
                                   std::span<const uint8_t> sealed,
                                   const std::string& what,
                                   const char* bound_to);

  std::unique_ptr<State> state_;
};

// One-off forms of the ChunkCipher methods (same results and errors).
absl::StatusOr<ChunkHash> KeyedChunkId(const TenantKey& key,
                                       std::span<const uint8_t> plaintext);
absl::StatusOr<std::string> SealChunk(const TenantKey& key, const ChunkHash& id,
                                      std::span<const uint8_t> payload);
absl::StatusOr<std::string> OpenChunk(const TenantKey& key, const ChunkHash& id,
                                      std::span<const uint8_t> sealed);
absl::StatusOr<std::string> SealMetadata(const TenantKey& key,
                                         std::string_view context,
                                         std::span<const uint8_t> plaintext);
absl::StatusOr<std::string> OpenMetadata(const TenantKey& key,
                                         std::string_view context,
                                         std::span<const uint8_t> sealed);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_CHUNK_CIPHER_H_
