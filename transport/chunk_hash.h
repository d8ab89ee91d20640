// ChunkHash: the content address of a chunk (SHA-256 of its uncompressed
// bytes). Chunks in the vault are named by it, the stream carries it, and a
// version's root hash is computed over the ordered list of them.
//
// Thread-safety: a value type; Sha256() is safe to call from any thread.
#ifndef CBTD_TRANSPORT_CHUNK_HASH_H_
#define CBTD_TRANSPORT_CHUNK_HASH_H_

#include <array>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cbtd::transport {

class ChunkHash {
 public:
  static constexpr size_t kSize = 32;

  ChunkHash() { bytes_.fill(0); }
  explicit ChunkHash(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}

  // SHA-256 of `data`.
  static ChunkHash Sha256(std::span<const uint8_t> data);
  // Parses exactly kSize raw bytes (as carried in protobuf `bytes` fields).
  static absl::StatusOr<ChunkHash> FromBytes(std::string_view raw);
  // Parses 64 lowercase or uppercase hex digits.
  static absl::StatusOr<ChunkHash> FromHex(std::string_view hex);

  std::string ToHex() const;
  // The kSize raw bytes, for protobuf `bytes` fields.
  std::string ToBytes() const;
  const std::array<uint8_t, kSize>& bytes() const { return bytes_; }

  friend bool operator==(const ChunkHash&, const ChunkHash&) = default;
  friend auto operator<=>(const ChunkHash&, const ChunkHash&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const ChunkHash& c) {
    return H::combine_contiguous(std::move(h), c.bytes_.data(), kSize);
  }

 private:
  std::array<uint8_t, kSize> bytes_;
};

std::ostream& operator<<(std::ostream& os, const ChunkHash& h);

struct ChunkHashStdHash {
  size_t operator()(const ChunkHash& h) const {
    size_t v;
    static_assert(sizeof(v) <= ChunkHash::kSize);
    std::copy_n(h.bytes().data(), sizeof(v), reinterpret_cast<uint8_t*>(&v));
    return v;  // SHA-256 output is already uniformly distributed.
  }
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_CHUNK_HASH_H_
