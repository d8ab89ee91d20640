#include "transport/chunk_hash.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cbtd::transport {

ChunkHash ChunkHash::Sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, kSize> out;
  SHA256(data.data(), data.size(), out.data());
  return ChunkHash(out);
}

absl::StatusOr<ChunkHash> ChunkHash::FromBytes(std::string_view raw) {
  if (raw.size() != kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk hash must be ", kSize, " bytes, got ", raw.size()));
  }
  std::array<uint8_t, kSize> out;
  std::copy_n(reinterpret_cast<const uint8_t*>(raw.data()), kSize, out.data());
  return ChunkHash(out);
}

absl::StatusOr<ChunkHash> ChunkHash::FromHex(std::string_view hex) {
  if (hex.size() != 2 * kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk hash must be ", 2 * kSize, " hex digits, got '",
                     std::string(hex), "'"));
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::array<uint8_t, kSize> out;
  for (size_t i = 0; i < kSize; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "chunk hash has a non-hex digit: '", std::string(hex), "'"));
    }
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return ChunkHash(out);
}

std::string ChunkHash::ToHex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * kSize, '0');
  for (size_t i = 0; i < kSize; ++i) {
    out[2 * i] = kDigits[bytes_[i] >> 4];
    out[2 * i + 1] = kDigits[bytes_[i] & 0xf];
  }
  return out;
}

std::string ChunkHash::ToBytes() const {
  return std::string(reinterpret_cast<const char*>(bytes_.data()), kSize);
}

std::ostream& operator<<(std::ostream& os, const ChunkHash& h) {
  return os << h.ToHex();
}

}  // namespace cbtd::transport
