#include "transport/stream_index.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/byte_order.h"

namespace cbtd::transport {
namespace {

using common::GetLe;
using common::PutLe;

constexpr char kIndexMagic[8] = {'C', 'B', 'T', 'D', 'I', 'D', 'X', '1'};
constexpr char kRootDomain[] = "cbtd-root-v1";  // followed by its NUL

absl::Status Damaged(std::string_view what, std::string_view why) {
  return absl::DataLossError(absl::StrCat("index ", std::string(what),
                                          " is damaged: ", std::string(why)));
}

}  // namespace

uint64_t ChunkCount(uint64_t volume_size_bytes, uint32_t chunk_size_bytes) {
  return (volume_size_bytes + chunk_size_bytes - 1) / chunk_size_bytes;
}

uint32_t ChunkLength(uint64_t volume_size_bytes, uint32_t chunk_size_bytes,
                     uint64_t index) {
  const uint64_t begin = index * chunk_size_bytes;
  if (begin >= volume_size_bytes) return 0;
  return static_cast<uint32_t>(
      std::min<uint64_t>(chunk_size_bytes, volume_size_bytes - begin));
}

bool IsAllZero(std::span<const uint8_t> data) {
  // Word-at-a-time is plenty: hashing the chunk costs far more.
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, data.data() + i, 8);
    if (w != 0) return false;
  }
  for (; i < data.size(); ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

ChunkHash EntryOf(std::span<const uint8_t> data) {
  return IsAllZero(data) ? kZeroEntry : ChunkHash::Sha256(data);
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256Stream::~Sha256Stream() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256Stream::Update(const void* data, size_t size) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size);
}

std::array<uint8_t, ChunkHash::kSize> Sha256Stream::Finish() {
  std::array<uint8_t, ChunkHash::kSize> out;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), nullptr);
  return out;
}

RootHasher::RootHasher(uint64_t volume_size_bytes, uint32_t chunk_size_bytes) {
  sha_.Update(kRootDomain, sizeof(kRootDomain));  // with the NUL
  std::string sizes;
  PutLe(sizes, volume_size_bytes, 8);
  PutLe(sizes, chunk_size_bytes, 4);
  sha_.Update(sizes.data(), sizes.size());
}

void RootHasher::Add(std::span<const ChunkHash> entries) {
  // ChunkHash is its 32 bytes, so a span of entries is contiguous bytes;
  // one update per span instead of one per entry.
  static_assert(sizeof(ChunkHash) == ChunkHash::kSize);
  if (!entries.empty()) {
    sha_.Update(entries.data(), entries.size() * ChunkHash::kSize);
  }
}

void RootHasher::AddZeros(uint64_t count) {
  static const std::array<ChunkHash, 1024> kZeros{};
  while (count > 0) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(count, kZeros.size()));
    Add({kZeros.data(), n});
    count -= n;
  }
}

ChunkHash RootHasher::Finish() { return ChunkHash(sha_.Finish()); }

ChunkHash ComputeRootHash(uint64_t volume_size_bytes, uint32_t chunk_size_bytes,
                          std::span<const ChunkHash> entries) {
  RootHasher hasher(volume_size_bytes, chunk_size_bytes);
  hasher.Add(entries);
  return hasher.Finish();
}

bool IsKeyFingerprint(std::string_view s) {
  return s.size() == 16 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string EncodeIndexHead(const IndexMetadata& index, uint64_t chunk_count) {
  // Format 2 marks an encrypted version, so a build that predates
  // encryption refuses it by its format instead of calling every chunk
  // damaged; a plaintext index stays format 1.
  const bool encrypted = !index.key_fingerprint.empty();
  nlohmann::json meta = {
      {"format", encrypted ? 2 : 1},
      {"host", index.host},
      {"volume", index.volume},
      {"version", index.version_id},
      {"base_version", index.base_version_id},
      {"volume_size_bytes", index.volume_size_bytes},
      {"chunk_size_bytes", index.chunk_size_bytes},
      {"chunk_count", chunk_count},
      {"created_unix_ms", index.created_unix_ms},
      {"root_hash", index.root_hash.ToHex()},
      {"hash_algorithm", encrypted ? "hmac-sha256" : "sha256"},
      {"encryption", encrypted ? "aes256gcm-v1" : "none"},
      {"key_fingerprint", index.key_fingerprint},
      {"stats",
       {{"chunk_records", index.stats.chunk_records},
        {"chunk_ref_records", index.stats.chunk_ref_records},
        {"zero_chunks", index.stats.zero_chunks},
        {"payload_bytes", index.stats.payload_bytes},
        {"raw_bytes", index.stats.raw_bytes},
        {"new_objects", index.stats.new_objects},
        {"stored_bytes", index.stats.stored_bytes}}},
  };
  if (!index.group.empty()) {
    meta["group"] = index.group;
    meta["group_version"] = index.group_version_id;
  }
  const std::string json = meta.dump();
  std::string out(kIndexMagic, sizeof(kIndexMagic));
  PutLe(out, json.size(), 4);
  out += json;
  return out;
}

std::string EncodeIndex(const VersionIndex& index) {
  std::string out = EncodeIndexHead(index, index.entries.size());
  out.reserve(out.size() + (index.entries.size() + 1) * ChunkHash::kSize);
  for (const ChunkHash& e : index.entries) {
    out.append(reinterpret_cast<const char*>(e.bytes().data()),
               ChunkHash::kSize);
  }
  std::array<uint8_t, ChunkHash::kSize> sum;
  SHA256(reinterpret_cast<const uint8_t*>(out.data()), out.size(), sum.data());
  out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return out;
}

absl::StatusOr<uint32_t> ParseIndexPrefix(std::string_view prefix,
                                          std::string_view what) {
  if (prefix.size() < kIndexPrefixBytes ||
      std::memcmp(prefix.data(), kIndexMagic, sizeof(kIndexMagic)) != 0) {
    return Damaged(what, "not a cbtd index (bad magic or too short)");
  }
  const uint64_t json_len = GetLe(prefix.data() + sizeof(kIndexMagic), 4);
  if (json_len > kMaxIndexMetadataBytes) {
    return Damaged(what, absl::StrCat("metadata length ", json_len));
  }
  return static_cast<uint32_t>(json_len);
}

absl::StatusOr<IndexMetadata> ParseIndexMetadata(std::string_view json,
                                                 std::string_view what) {
  IndexMetadata index;
  try {
    const nlohmann::json meta = nlohmann::json::parse(json);
    const int format = meta.at("format").get<int>();
    if (format != 1 && format != 2) {
      return absl::FailedPreconditionError(
          absl::StrCat("index ", std::string(what), " has format ", format,
                       "; this build reads formats 1 and 2"));
    }
    index.host = meta.at("host").get<std::string>();
    index.volume = meta.at("volume").get<std::string>();
    index.version_id = meta.at("version").get<std::string>();
    index.base_version_id = meta.at("base_version").get<std::string>();
    index.volume_size_bytes = meta.at("volume_size_bytes").get<uint64_t>();
    index.chunk_size_bytes = meta.at("chunk_size_bytes").get<uint32_t>();
    index.created_unix_ms = meta.at("created_unix_ms").get<int64_t>();
    auto root = ChunkHash::FromHex(meta.at("root_hash").get<std::string>());
    if (!root.ok()) return Damaged(what, std::string(root.status().message()));
    index.root_hash = *root;
    // Format 1 indexes written before encryption existed have neither
    // field: plaintext.
    const std::string encryption = meta.value("encryption", "none");
    index.key_fingerprint = meta.value("key_fingerprint", "");
    if (format == 1 &&
        (encryption != "none" || !index.key_fingerprint.empty())) {
      return Damaged(what, "a format 1 index cannot be encrypted");
    }
    if (format == 2 && (encryption != "aes256gcm-v1" ||
                        !IsKeyFingerprint(index.key_fingerprint))) {
      return Damaged(what, absl::StrCat("encryption '", encryption,
                                        "' with key fingerprint '",
                                        index.key_fingerprint, "'"));
    }
    // Absent in versions backed up on their own and in indexes written
    // before groups existed.
    index.group = meta.value("group", "");
    index.group_version_id = meta.value("group_version", "");
    if (index.group.empty() != index.group_version_id.empty()) {
      return Damaged(what, "a group without a group version, or the reverse");
    }
    const nlohmann::json& st = meta.at("stats");
    index.stats.chunk_records = st.value("chunk_records", uint64_t{0});
    index.stats.chunk_ref_records = st.value("chunk_ref_records", uint64_t{0});
    index.stats.zero_chunks = st.value("zero_chunks", uint64_t{0});
    index.stats.payload_bytes = st.value("payload_bytes", uint64_t{0});
    index.stats.raw_bytes = st.value("raw_bytes", uint64_t{0});
    index.stats.new_objects = st.value("new_objects", uint64_t{0});
    index.stats.stored_bytes = st.value("stored_bytes", uint64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return Damaged(what, absl::StrCat("metadata: ", e.what()));
  }
  if (index.chunk_size_bytes == 0) return Damaged(what, "chunk size 0");
  return index;
}

absl::StatusOr<VersionIndex> DecodeIndex(std::string_view data,
                                         std::string_view what) {
  const size_t fixed = kIndexPrefixBytes;
  if (data.size() < fixed + ChunkHash::kSize) {
    return Damaged(what, "not a cbtd index (bad magic or too short)");
  }
  auto json_len = ParseIndexPrefix(data, what);
  if (!json_len.ok()) return json_len.status();
  std::array<uint8_t, ChunkHash::kSize> sum;
  const size_t body = data.size() - ChunkHash::kSize;
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), body, sum.data());
  if (std::memcmp(sum.data(), data.data() + body, sum.size()) != 0) {
    return Damaged(what, "checksum mismatch");
  }
  if (*json_len > body - fixed) return Damaged(what, "metadata length");
  auto meta = ParseIndexMetadata(data.substr(fixed, *json_len), what);
  if (!meta.ok()) return meta.status();
  VersionIndex index;
  static_cast<IndexMetadata&>(index) = *std::move(meta);
  const uint64_t n =
      ChunkCount(index.volume_size_bytes, index.chunk_size_bytes);
  if (body - fixed - *json_len != n * ChunkHash::kSize) {
    return Damaged(what, absl::StrCat("expected ", n, " entries"));
  }
  index.entries.resize(n);
  const char* p = data.data() + fixed + *json_len;
  for (uint64_t i = 0; i < n; ++i, p += ChunkHash::kSize) {
    std::array<uint8_t, ChunkHash::kSize> b;
    std::memcpy(b.data(), p, b.size());
    index.entries[i] = ChunkHash(b);
  }
  if (ComputeRootHash(index.volume_size_bytes, index.chunk_size_bytes,
                      index.entries) != index.root_hash) {
    return Damaged(what, "root hash does not match its entries");
  }
  return index;
}

}  // namespace cbtd::transport
