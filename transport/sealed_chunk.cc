#include "transport/sealed_chunk.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace cbtd::transport {

size_t MaxSealedPayloadBytes(uint32_t raw_size) {
  return 1 + ZSTD_compressBound(raw_size) + kSealOverhead;
}

std::string SealedKeyFingerprint(std::string_view sealed) {
  // Sealed object layout (chunk_cipher.h): u8 format, 8 bytes fingerprint.
  constexpr size_t kFingerprintBytes = 8;
  if (sealed.size() < 1 + kFingerprintBytes) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 1; i <= kFingerprintBytes; ++i) {
    const auto b = static_cast<uint8_t>(sealed[i]);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> SealChunkPayload(ChunkCipher& cipher,
                                             const ChunkHash& id,
                                             stream::Compression inner,
                                             std::span<const uint8_t> body) {
  std::string plain;
  plain.reserve(1 + body.size());
  plain.push_back(static_cast<char>(inner));
  plain.append(reinterpret_cast<const char*>(body.data()), body.size());
  return cipher.SealChunk(id, AsBytes(plain));
}

absl::StatusOr<std::string> OpenChunkPayload(ChunkCipher& cipher,
                                             const ChunkHash& id,
                                             std::string_view sealed,
                                             uint32_t max_raw_bytes,
                                             std::string_view what) {
  const std::string name(what);
  auto opened = cipher.OpenChunk(id, AsBytes(sealed));
  if (!opened.ok()) {
    return absl::Status(opened.status().code(),
                        absl::StrCat(name, ": ", opened.status().message()));
  }
  auto damaged = [&](std::string why) {
    return absl::DataLossError(absl::StrCat(name, " is damaged: ", why));
  };
  if (opened->empty()) return damaged("sealed payload is empty");
  const auto inner = static_cast<uint8_t>((*opened)[0]);
  const std::string_view body = std::string_view(*opened).substr(1);
  std::string raw;
  if (inner == stream::COMPRESSION_NONE) {
    if (body.size() > max_raw_bytes) {
      return damaged(absl::StrCat(body.size(), " bytes, more than the ",
                                  max_raw_bytes, " of a chunk"));
    }
    raw.assign(body);
  } else if (inner == stream::COMPRESSION_ZSTD) {
    // Authenticated, but the frame's size is still bounded before
    // allocating: a key holder's bug must not become a huge allocation.
    const unsigned long long frame =
        ZSTD_getFrameContentSize(body.data(), body.size());
    if (frame == ZSTD_CONTENTSIZE_ERROR || frame == ZSTD_CONTENTSIZE_UNKNOWN ||
        frame > max_raw_bytes) {
      return damaged("zstd frame has no valid size within a chunk");
    }
    raw.resize(frame);
    const size_t n =
        ZSTD_decompress(raw.data(), raw.size(), body.data(), body.size());
    if (ZSTD_isError(n) || n != frame) {
      return damaged(absl::StrCat(
          "zstd payload does not decompress: ",
          ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short output"));
    }
  } else {
    return damaged(absl::StrCat("unknown inner compression ", int{inner}));
  }
  auto actual = cipher.KeyedChunkId(AsBytes(raw));
  if (!actual.ok()) return actual.status();
  if (*actual != id) {
    return damaged(absl::StrCat("keyed id of its content is ", actual->ToHex(),
                                ", expected ", id.ToHex()));
  }
  return raw;
}

}  // namespace cbtd::transport
