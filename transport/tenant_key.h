// TenantKey: the secret of one tenant (one backed-up host or group of
// hosts) in vault format 2. It never leaves the sending host: chunk
// payloads and version metadata are sealed under keys derived from it
// before they are sent (transport/chunk_cipher.h), and chunk ids are keyed
// by it so the receiver cannot confirm guessed content. Losing it loses
// every backup made under it; nobody, including the receiver's operator,
// can restore without it.
//
// Derived subkeys (HKDF-SHA-256, salt "cbtd-tenant-key-v1", info = label):
//   id_key   "cbtd id_key"    chunk ids (HMAC-SHA-256)
//   data_key "cbtd data_key"  chunk payloads (per-chunk AES-256-GCM keys)
//   meta_key "cbtd meta_key"  version metadata (AES-256-GCM)
// fingerprint: the first 8 bytes of HMAC-SHA-256(key,
// "cbtd-key-fingerprint-v1") as 16 lowercase hex digits. It is public:
// listings, logs and the receiver may show it to tell keys apart; it
// reveals nothing usable about the key.
//
// Recovery text (for paper or a password manager), e.g.
//   cbtd1-ABCDE-FGHJK-...  (14 groups of 5 Crockford base32 characters)
// The 32 key bytes and a 3-byte checksum (SHA-256("cbtd-recovery-v1" ||
// key)) make 280 bits = 56 characters; each group is 4 of them plus a check
// character (sum of (2i+1)*v_i + 7*group + 1, mod 32), so any single
// mistyped character, and two groups swapped, are found and the group is
// named; the checksum catches what is left. Reading ignores case, spaces,
// newlines and dashes, and takes O as 0 and I / L as 1.
//
// Thread-safety: an immutable value; const methods are safe from any
// thread. The destructor wipes the key and subkeys from memory.
#ifndef CBTD_TRANSPORT_TENANT_KEY_H_
#define CBTD_TRANSPORT_TENANT_KEY_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace cbtd::transport {

class TenantKey {
 public:
  static constexpr size_t kSize = 32;
  using Bytes = std::array<uint8_t, kSize>;

  // A fresh key from OpenSSL's CSPRNG. INTERNAL if the RNG or HKDF fails
  // (OpenSSL is broken or not seeded); never a weak key.
  static absl::StatusOr<TenantKey> Generate();
  // The key whose secret is `secret`: INVALID_ARGUMENT unless it is
  // exactly kSize bytes; INTERNAL if HKDF fails.
  static absl::StatusOr<TenantKey> FromSecret(std::span<const uint8_t> secret);
  // Parses recovery text (see above). INVALID_ARGUMENT with a message
  // naming what is wrong (missing "cbtd1-" prefix, wrong length, a
  // character that is not base32, the group with a typo, the checksum).
  static absl::StatusOr<TenantKey> FromRecoveryText(std::string_view text);

  TenantKey(const TenantKey&) = default;
  TenantKey& operator=(const TenantKey&) = default;
  ~TenantKey();

  // The subkeys; each used for one purpose only (see above).
  const Bytes& id_key() const { return id_key_; }
  const Bytes& data_key() const { return data_key_; }
  const Bytes& meta_key() const { return meta_key_; }
  // 16 lowercase hex digits; public.
  const std::string& fingerprint() const { return fingerprint_; }
  // The first 8 bytes of the fingerprint, as carried in sealed objects.
  const std::array<uint8_t, 8>& fingerprint_bytes() const {
    return fingerprint_bytes_;
  }

  // The secret itself, for the key file and the recovery text only.
  const Bytes& secret() const { return secret_; }
  // "cbtd1-XXXXX-XXXXX-..." on one line, no newline.
  std::string ToRecoveryText() const;

  // Constant-time comparison of the secrets.
  friend bool operator==(const TenantKey& a, const TenantKey& b);

 private:
  static constexpr size_t kRecoveryChecksumBytes = 3;

  TenantKey() = default;
  absl::Status Derive();

  Bytes secret_{};
  Bytes id_key_{};
  Bytes data_key_{};
  Bytes meta_key_{};
  std::array<uint8_t, 8> fingerprint_bytes_{};
  std::string fingerprint_;
  std::array<uint8_t, kRecoveryChecksumBytes> recovery_checksum_{};
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_TENANT_KEY_H_
