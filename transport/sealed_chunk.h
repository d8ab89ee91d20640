// The chunk payload of an encrypted stream (format 3,
// ENCRYPTION_AES256GCM_V1), shared by the sender, which seals it, and the
// restore and verify paths, which open it. The receiver only stores it.
//
//   id      = ChunkCipher::KeyedChunkId(plaintext)      (the index entry)
//   payload = ChunkCipher::SealChunk(id, inner || body)
//   inner   = u8 compression of body: COMPRESSION_NONE (body = plaintext)
//             or COMPRESSION_ZSTD (body = one zstd frame of the plaintext)
//
// The compression byte is inside the sealed bytes, so the receiver learns
// nothing from it beyond the payload's length. Opening checks, in order:
// the key (by fingerprint), authentication under the id, the inner byte,
// the decompressed size, and that the keyed id of the plaintext is `id`.
//
// Thread-safety: free functions; the ChunkCipher passed in is used by one
// thread at a time (it is not thread-safe).
#ifndef CBTD_TRANSPORT_SEALED_CHUNK_H_
#define CBTD_TRANSPORT_SEALED_CHUNK_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "transport/chunk_cipher.h"
#include "transport/chunk_hash.h"
#include "transport/proto/stream.pb.h"

namespace cbtd::transport {

// Smallest sealed payload: the seal and the inner compression byte (the
// body of a chunk is never empty).
inline constexpr size_t kMinSealedPayloadBytes = kSealOverhead + 2;

// Largest sealed payload of a chunk of `raw_size` plaintext bytes: the
// inner byte, zstd's bound for raw_size, and the seal.
size_t MaxSealedPayloadBytes(uint32_t raw_size);

// The key fingerprint a sealed payload names (16 lowercase hex digits), or
// "" if it is too short to name one. Public: the receiver compares it with
// the stream's key_fingerprint without the key.
std::string SealedKeyFingerprint(std::string_view sealed);

// Seals `body` (compressed as `inner` says) for chunk `id`.
absl::StatusOr<std::string> SealChunkPayload(ChunkCipher& cipher,
                                             const ChunkHash& id,
                                             stream::Compression inner,
                                             std::span<const uint8_t> body);

// The plaintext of a sealed chunk payload, fully checked (see above), of at
// most `max_raw_bytes`. Errors, `what` naming the chunk:
//   FAILED_PRECONDITION  sealed under another key (both fingerprints named)
//   DATA_LOSS            damaged: does not authenticate, bad inner byte,
//                        does not decompress, too large, or its keyed id
//                        is not `id`
//   INTERNAL             OpenSSL failed
absl::StatusOr<std::string> OpenChunkPayload(ChunkCipher& cipher,
                                             const ChunkHash& id,
                                             std::string_view sealed,
                                             uint32_t max_raw_bytes,
                                             std::string_view what);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_SEALED_CHUNK_H_
