#include "transport/tenant_key.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cbtd::transport {
namespace {

constexpr std::string_view kHkdfSalt = "cbtd-tenant-key-v1";
constexpr std::string_view kFingerprintLabel = "cbtd-key-fingerprint-v1";
constexpr std::string_view kRecoveryLabel = "cbtd-recovery-v1";

// Recovery text layout (tenant_key.h).
constexpr std::string_view kRecoveryPrefix = "CBTD1";
constexpr char kBase32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kChecksumBytes = 3;  // TenantKey::kRecoveryChecksumBytes
constexpr size_t kPayloadBytes = TenantKey::kSize + kChecksumBytes;  // 35
constexpr size_t kDataChars = kPayloadBytes * 8 / 5;                 // 56
constexpr size_t kGroupDataChars = 4;
constexpr size_t kGroups = kDataChars / kGroupDataChars;  // 14
constexpr size_t kGroupChars = kGroupDataChars + 1;
static_assert(kPayloadBytes * 8 % 5 == 0 && kDataChars % kGroupDataChars == 0);

using KdfPtr = std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)>;

OSSL_PARAM OctetParam(const char* name, const void* data, size_t size) {
  // OSSL_PARAM is not const-correct; derive only reads these.
  return OSSL_PARAM_construct_octet_string(name, const_cast<void*>(data), size);
}

absl::Status Hkdf(const TenantKey::Bytes& secret, std::string_view label,
                  TenantKey::Bytes& out) {
  KdfPtr kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr), EVP_KDF_free);
  if (!kdf) return absl::InternalError("OpenSSL has no HKDF");
  KdfCtxPtr ctx(EVP_KDF_CTX_new(kdf.get()), EVP_KDF_CTX_free);
  if (!ctx) return absl::InternalError("EVP_KDF_CTX_new failed");
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OctetParam(OSSL_KDF_PARAM_KEY, secret.data(), secret.size()),
      OctetParam(OSSL_KDF_PARAM_SALT, kHkdfSalt.data(), kHkdfSalt.size()),
      OctetParam(OSSL_KDF_PARAM_INFO, label.data(), label.size()),
      OSSL_PARAM_construct_end()};
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return absl::InternalError(
        absl::StrCat("HKDF of ", std::string(label), " failed"));
  }
  return absl::OkStatus();
}

absl::Status HmacSha256(std::span<const uint8_t> key, std::string_view data,
                        std::array<uint8_t, 32>& out) {
  size_t n = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(),
                key.size(), reinterpret_cast<const unsigned char*>(data.data()),
                data.size(), out.data(), out.size(), &n) == nullptr ||
      n != out.size()) {
    return absl::InternalError("HMAC-SHA-256 failed");
  }
  return absl::OkStatus();
}

// The recovery checksum of `secret`: kChecksumBytes of SHA-256.
absl::StatusOr<std::array<uint8_t, kChecksumBytes>> RecoveryChecksum(
    const TenantKey::Bytes& secret) {
  std::array<uint8_t, 32> digest{};
  std::vector<uint8_t> in(kRecoveryLabel.begin(), kRecoveryLabel.end());
  in.insert(in.end(), secret.begin(), secret.end());
  unsigned int n = 0;
  const int ok = EVP_Digest(in.data(), in.size(), digest.data(), &n,
                            EVP_sha256(), nullptr);
  OPENSSL_cleanse(in.data(), in.size());
  if (ok != 1) return absl::InternalError("SHA-256 failed");
  std::array<uint8_t, kChecksumBytes> out{};
  std::copy_n(digest.begin(), kChecksumBytes, out.begin());
  return out;
}

uint8_t GroupCheck(const uint8_t* values, size_t group) {
  unsigned sum = 7 * static_cast<unsigned>(group) + 1;
  for (size_t i = 0; i < kGroupDataChars; ++i) sum += (2 * i + 1) * values[i];
  return static_cast<uint8_t>(sum % 32);
}

// Crockford base32 value of `c`, or -1. Case-insensitive; O is 0, I and L
// are 1.
int Base32Value(char c) {
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (c == 'O') c = '0';
  if (c == 'I' || c == 'L') c = '1';
  for (int v = 0; v < 32; ++v) {
    if (kBase32[v] == c) return v;
  }
  return -1;
}

}  // namespace

TenantKey::~TenantKey() {
  OPENSSL_cleanse(secret_.data(), secret_.size());
  OPENSSL_cleanse(id_key_.data(), id_key_.size());
  OPENSSL_cleanse(data_key_.data(), data_key_.size());
  OPENSSL_cleanse(meta_key_.data(), meta_key_.size());
}

bool operator==(const TenantKey& a, const TenantKey& b) {
  return CRYPTO_memcmp(a.secret_.data(), b.secret_.data(), TenantKey::kSize) ==
         0;
}

absl::Status TenantKey::Derive() {
  if (absl::Status st = Hkdf(secret_, "cbtd id_key", id_key_); !st.ok()) {
    return st;
  }
  if (absl::Status st = Hkdf(secret_, "cbtd data_key", data_key_); !st.ok()) {
    return st;
  }
  if (absl::Status st = Hkdf(secret_, "cbtd meta_key", meta_key_); !st.ok()) {
    return st;
  }
  absl::StatusOr<std::array<uint8_t, kChecksumBytes>> sum =
      RecoveryChecksum(secret_);
  if (!sum.ok()) return sum.status();
  recovery_checksum_ = *sum;
  std::array<uint8_t, 32> mac{};
  if (absl::Status st = HmacSha256(secret_, kFingerprintLabel, mac); !st.ok()) {
    return st;
  }
  std::copy_n(mac.begin(), fingerprint_bytes_.size(),
              fingerprint_bytes_.begin());
  static constexpr char kHex[] = "0123456789abcdef";
  fingerprint_.clear();
  for (uint8_t b : fingerprint_bytes_) {
    fingerprint_ += kHex[b >> 4];
    fingerprint_ += kHex[b & 15];
  }
  return absl::OkStatus();
}

absl::StatusOr<TenantKey> TenantKey::Generate() {
  Bytes secret{};
  if (RAND_priv_bytes(secret.data(), static_cast<int>(secret.size())) != 1) {
    return absl::InternalError(
        "the random number generator failed; no key was made");
  }
  absl::StatusOr<TenantKey> key = FromSecret(secret);
  OPENSSL_cleanse(secret.data(), secret.size());
  return key;
}

absl::StatusOr<TenantKey> TenantKey::FromSecret(
    std::span<const uint8_t> secret) {
  if (secret.size() != kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("a tenant key is ", kSize, " bytes, not ", secret.size()));
  }
  TenantKey key;
  std::copy(secret.begin(), secret.end(), key.secret_.begin());
  if (absl::Status st = key.Derive(); !st.ok()) return st;
  return key;
}

std::string TenantKey::ToRecoveryText() const {
  std::array<uint8_t, kPayloadBytes> payload{};
  std::copy(secret_.begin(), secret_.end(), payload.begin());
  std::copy(recovery_checksum_.begin(), recovery_checksum_.end(),
            payload.begin() + kSize);
  std::array<uint8_t, kDataChars> values{};
  for (size_t i = 0; i < kDataChars; ++i) {
    unsigned v = 0;
    for (size_t bit = i * 5; bit < i * 5 + 5; ++bit) {
      v = (v << 1) | ((payload[bit / 8] >> (7 - bit % 8)) & 1);
    }
    values[i] = static_cast<uint8_t>(v);
  }
  std::string out = "cbtd1";
  for (size_t g = 0; g < kGroups; ++g) {
    const uint8_t* group = &values[g * kGroupDataChars];
    out += '-';
    for (size_t i = 0; i < kGroupDataChars; ++i) out += kBase32[group[i]];
    out += kBase32[GroupCheck(group, g)];
  }
  OPENSSL_cleanse(payload.data(), payload.size());
  OPENSSL_cleanse(values.data(), values.size());
  return out;
}

absl::StatusOr<TenantKey> TenantKey::FromRecoveryText(std::string_view text) {
  std::string chars;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-') continue;
    chars += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  if (chars.rfind(kRecoveryPrefix, 0) != 0) {
    return absl::InvalidArgumentError(
        "recovery text must start with cbtd1- (as printed by cbtctl key "
        "export)");
  }
  chars.erase(0, kRecoveryPrefix.size());
  if (chars.size() != kGroups * kGroupChars) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recovery text has ", chars.size(), " characters after cbtd1-, not ",
        kGroups * kGroupChars, " (", kGroups, " groups of ", kGroupChars,
        "): a group is missing or doubled"));
  }
  std::array<uint8_t, kDataChars> values{};
  std::vector<std::string> bad_groups;
  for (size_t g = 0; g < kGroups; ++g) {
    const std::string_view group =
        std::string_view(chars).substr(g * kGroupChars, kGroupChars);
    std::array<uint8_t, kGroupChars> v{};
    for (size_t i = 0; i < kGroupChars; ++i) {
      const int value = Base32Value(group[i]);
      if (value < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "recovery text group ", g + 1, " (", std::string(group), ") has '",
            std::string(1, group[i]), "', which is not a base32 character"));
      }
      v[i] = static_cast<uint8_t>(value);
    }
    if (GroupCheck(v.data(), g) != v[kGroupDataChars]) {
      bad_groups.push_back(absl::StrCat(g + 1, " (", std::string(group), ")"));
    }
    std::copy_n(v.begin(), kGroupDataChars, &values[g * kGroupDataChars]);
  }
  if (!bad_groups.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recovery text has a typo in group ", absl::StrJoin(bad_groups, ", "),
        " (counting from 1 after cbtd1-); compare it with the paper copy"));
  }
  std::array<uint8_t, kPayloadBytes> payload{};
  for (size_t i = 0; i < kDataChars; ++i) {
    for (size_t b = 0; b < 5; ++b) {
      const size_t bit = i * 5 + b;
      const unsigned one = (values[i] >> (4 - b)) & 1;
      payload[bit / 8] =
          static_cast<uint8_t>(payload[bit / 8] | (one << (7 - bit % 8)));
    }
  }
  absl::StatusOr<TenantKey> key =
      FromSecret(std::span<const uint8_t>(payload.data(), kSize));
  const bool sum_ok =
      key.ok() && CRYPTO_memcmp(key->recovery_checksum_.data(),
                                payload.data() + kSize, kChecksumBytes) == 0;
  OPENSSL_cleanse(payload.data(), payload.size());
  OPENSSL_cleanse(values.data(), values.size());
  if (!key.ok()) return key.status();
  if (!sum_ok) {
    return absl::InvalidArgumentError(
        "recovery text checksum does not match: two characters are "
        "mistyped or groups are out of order; compare it with the paper "
        "copy");
  }
  return key;
}

}  // namespace cbtd::transport
