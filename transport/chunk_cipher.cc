#include "transport/chunk_cipher.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cbtd::transport {
namespace {

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kFingerprintBytes = 8;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kHeaderBytes = 1 + kFingerprintBytes + kNonceBytes;
static_assert(kHeaderBytes + kTagBytes == kSealOverhead);
// EVP_CipherUpdate takes an int length; larger inputs go in pieces.
constexpr size_t kMaxUpdateBytes = size_t{1} << 30;

struct CipherFree {
  void operator()(EVP_CIPHER* p) const { EVP_CIPHER_free(p); }
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
  void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
  void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
};

absl::Status OpenSslError(const char* what) {
  return absl::InternalError(absl::StrCat("OpenSSL ", what, " failed"));
}

std::string FingerprintHex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// An HMAC-SHA-256 context keyed once; EVP_MAC_init with no key restarts
// it under the same key without redoing the key setup.
absl::StatusOr<std::unique_ptr<EVP_MAC_CTX, CipherFree>> KeyedHmac(
    EVP_MAC* mac, std::span<const uint8_t> key) {
  std::unique_ptr<EVP_MAC_CTX, CipherFree> ctx(EVP_MAC_CTX_new(mac));
  if (!ctx) return OpenSslError("EVP_MAC_CTX_new");
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1) {
    return OpenSslError("HMAC init");
  }
  return ctx;
}

absl::StatusOr<std::array<uint8_t, 32>> Hmac(EVP_MAC_CTX* ctx,
                                             std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  size_t n = 0;
  if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(ctx, data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx, out.data(), &n, out.size()) != 1 || n != out.size()) {
    return OpenSslError("HMAC-SHA-256");
  }
  return out;
}

// Runs `in` through the cipher into `out` (same length), in int-sized
// pieces.
bool CipherUpdate(EVP_CIPHER_CTX* ctx, std::span<const uint8_t> in,
                  uint8_t* out) {
  while (!in.empty()) {
    const size_t piece = std::min(in.size(), kMaxUpdateBytes);
    int n = 0;
    if (EVP_CipherUpdate(ctx, out, &n, in.data(), static_cast<int>(piece)) !=
            1 ||
        static_cast<size_t>(n) != piece) {
      return false;
    }
    in = in.subspan(piece);
    out += piece;
  }
  return true;
}

bool AddAad(EVP_CIPHER_CTX* ctx, std::span<const uint8_t> aad) {
  while (!aad.empty()) {
    const size_t piece = std::min(aad.size(), kMaxUpdateBytes);
    int n = 0;
    if (EVP_CipherUpdate(ctx, nullptr, &n, aad.data(),
                         static_cast<int>(piece)) != 1) {
      return false;
    }
    aad = aad.subspan(piece);
  }
  return true;
}

}  // namespace

struct ChunkCipher::State {
  std::unique_ptr<EVP_CIPHER, CipherFree> aes_gcm;
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> ctx;
  std::unique_ptr<EVP_MAC, CipherFree> hmac;
  std::unique_ptr<EVP_MAC_CTX, CipherFree> id_mac;    // keyed with id_key
  std::unique_ptr<EVP_MAC_CTX, CipherFree> data_mac;  // keyed with data_key
  TenantKey::Bytes meta_key{};
  std::array<uint8_t, kFingerprintBytes> fingerprint{};

  ~State() { OPENSSL_cleanse(meta_key.data(), meta_key.size()); }
};

ChunkCipher::ChunkCipher(std::unique_ptr<State> state)
    : state_(std::move(state)) {}
ChunkCipher::ChunkCipher(ChunkCipher&&) noexcept = default;
ChunkCipher& ChunkCipher::operator=(ChunkCipher&&) noexcept = default;
ChunkCipher::~ChunkCipher() = default;

absl::StatusOr<ChunkCipher> ChunkCipher::Create(const TenantKey& key) {
  auto s = std::make_unique<State>();
  s->aes_gcm.reset(EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
  if (!s->aes_gcm) return OpenSslError("fetch of AES-256-GCM");
  s->ctx.reset(EVP_CIPHER_CTX_new());
  if (!s->ctx) return OpenSslError("EVP_CIPHER_CTX_new");
  // Bind the cipher once; each seal or open then only sets key and nonce.
  if (EVP_CipherInit_ex2(s->ctx.get(), s->aes_gcm.get(), nullptr, nullptr, 1,
                         nullptr) != 1) {
    return OpenSslError("AES-256-GCM init");
  }
  s->hmac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!s->hmac) return OpenSslError("fetch of HMAC");
  auto id_mac = KeyedHmac(s->hmac.get(), key.id_key());
  if (!id_mac.ok()) return id_mac.status();
  s->id_mac = *std::move(id_mac);
  auto data_mac = KeyedHmac(s->hmac.get(), key.data_key());
  if (!data_mac.ok()) return data_mac.status();
  s->data_mac = *std::move(data_mac);
  s->meta_key = key.meta_key();
  s->fingerprint = key.fingerprint_bytes();
  return ChunkCipher(std::move(s));
}

absl::StatusOr<ChunkHash> ChunkCipher::KeyedChunkId(
    std::span<const uint8_t> plaintext) {
  absl::StatusOr<std::array<uint8_t, 32>> mac =
      Hmac(state_->id_mac.get(), plaintext);
  if (!mac.ok()) return mac.status();
  return ChunkHash(*mac);
}

absl::StatusOr<std::array<uint8_t, 32>> ChunkCipher::ChunkKey(
    const ChunkHash& id) {
  return Hmac(state_->data_mac.get(), id.bytes());
}

absl::StatusOr<std::string> ChunkCipher::Seal(
    std::span<const uint8_t, 32> key, std::span<const uint8_t> aad,
    std::span<const uint8_t> plaintext) {
  std::string sealed(plaintext.size() + kSealOverhead, '\0');
  auto* out = reinterpret_cast<uint8_t*>(sealed.data());
  out[0] = kFormatVersion;
  std::memcpy(out + 1, state_->fingerprint.data(), kFingerprintBytes);
  uint8_t* nonce = out + 1 + kFingerprintBytes;
  if (RAND_bytes(nonce, kNonceBytes) != 1) {
    return OpenSslError("random number generator (for a nonce)");
  }
  EVP_CIPHER_CTX* ctx = state_->ctx.get();
  uint8_t* body = out + kHeaderBytes;
  int n = 0;
  if (EVP_CipherInit_ex2(ctx, nullptr, key.data(), nonce, 1, nullptr) != 1 ||
      !AddAad(ctx, {out, kHeaderBytes}) || !AddAad(ctx, aad) ||
      !CipherUpdate(ctx, plaintext, body) ||
      EVP_CipherFinal_ex(ctx, body + plaintext.size(), &n) != 1 || n != 0 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagBytes,
                          body + plaintext.size()) != 1) {
    return OpenSslError("AES-256-GCM seal");
  }
  return sealed;
}

absl::StatusOr<std::string> ChunkCipher::Open(std::span<const uint8_t, 32> key,
                                              std::span<const uint8_t> aad,
                                              std::span<const uint8_t> sealed,
                                              const std::string& what,
                                              const char* bound_to) {
  if (sealed.size() < kSealOverhead) {
    return absl::DataLossError(
        absl::StrCat(what, " is truncated: ", sealed.size(),
                     " bytes, a sealed object has at least ", kSealOverhead));
  }
  if (sealed[0] != kFormatVersion) {
    return absl::DataLossError(
        absl::StrCat(what, " has sealed format version ", int{sealed[0]},
                     ", this cbtd reads ", int{kFormatVersion},
                     ": it is damaged, or was written by a newer cbtd"));
  }
  const std::span<const uint8_t> fingerprint =
      sealed.subspan(1, kFingerprintBytes);
  if (!std::equal(fingerprint.begin(), fingerprint.end(),
                  state_->fingerprint.begin())) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " was sealed under key ", FingerprintHex(fingerprint),
        ", not under this key (", FingerprintHex(state_->fingerprint),
        "): load the key that made the backup (cbtctl key show, cbtctl key "
        "import)"));
  }
  const std::span<const uint8_t> nonce =
      sealed.subspan(1 + kFingerprintBytes, kNonceBytes);
  const std::span<const uint8_t> body =
      sealed.subspan(kHeaderBytes, sealed.size() - kSealOverhead);
  std::array<uint8_t, kTagBytes> tag{};
  std::memcpy(tag.data(), sealed.data() + sealed.size() - kTagBytes, kTagBytes);
  std::string plaintext(body.size(), '\0');
  auto* out = reinterpret_cast<uint8_t*>(plaintext.data());
  EVP_CIPHER_CTX* ctx = state_->ctx.get();
  int n = 0;
  if (EVP_CipherInit_ex2(ctx, nullptr, key.data(), nonce.data(), 0, nullptr) !=
          1 ||
      !AddAad(ctx, sealed.first(kHeaderBytes)) || !AddAad(ctx, aad) ||
      !CipherUpdate(ctx, body, out) ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag.data()) !=
          1) {
    return OpenSslError("AES-256-GCM open");
  }
  if (EVP_CipherFinal_ex(ctx, out + body.size(), &n) != 1) {
    // Unauthenticated bytes never leave this function.
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return absl::DataLossError(absl::StrCat(
        what, " does not authenticate under key ",
        FingerprintHex(state_->fingerprint),
        ": the stored data is damaged or belongs to another ", bound_to));
  }
  return plaintext;
}

absl::StatusOr<std::string> ChunkCipher::SealChunk(
    const ChunkHash& id, std::span<const uint8_t> payload) {
  absl::StatusOr<std::array<uint8_t, 32>> key = ChunkKey(id);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> sealed = Seal(*key, id.bytes(), payload);
  OPENSSL_cleanse(key->data(), key->size());
  return sealed;
}

absl::StatusOr<std::string> ChunkCipher::OpenChunk(
    const ChunkHash& id, std::span<const uint8_t> sealed) {
  absl::StatusOr<std::array<uint8_t, 32>> key = ChunkKey(id);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> plaintext = Open(
      *key, id.bytes(), sealed, absl::StrCat("chunk ", id.ToHex()), "chunk id");
  OPENSSL_cleanse(key->data(), key->size());
  return plaintext;
}

absl::StatusOr<std::string> ChunkCipher::SealMetadata(
    std::string_view context, std::span<const uint8_t> plaintext) {
  return Seal(state_->meta_key, AsBytes(context), plaintext);
}

absl::StatusOr<std::string> ChunkCipher::OpenMetadata(
    std::string_view context, std::span<const uint8_t> sealed) {
  return Open(state_->meta_key, AsBytes(context), sealed,
              absl::StrCat("metadata '", std::string(context), "'"), "context");
}

absl::StatusOr<ChunkHash> KeyedChunkId(const TenantKey& key,
                                       std::span<const uint8_t> plaintext) {
  absl::StatusOr<ChunkCipher> c = ChunkCipher::Create(key);
  if (!c.ok()) return c.status();
  return c->KeyedChunkId(plaintext);
}

absl::StatusOr<std::string> SealChunk(const TenantKey& key, const ChunkHash& id,
                                      std::span<const uint8_t> payload) {
  absl::StatusOr<ChunkCipher> c = ChunkCipher::Create(key);
  if (!c.ok()) return c.status();
  return c->SealChunk(id, payload);
}

absl::StatusOr<std::string> OpenChunk(const TenantKey& key, const ChunkHash& id,
                                      std::span<const uint8_t> sealed) {
  absl::StatusOr<ChunkCipher> c = ChunkCipher::Create(key);
  if (!c.ok()) return c.status();
  return c->OpenChunk(id, sealed);
}

absl::StatusOr<std::string> SealMetadata(const TenantKey& key,
                                         std::string_view context,
                                         std::span<const uint8_t> plaintext) {
  absl::StatusOr<ChunkCipher> c = ChunkCipher::Create(key);
  if (!c.ok()) return c.status();
  return c->SealMetadata(context, plaintext);
}

absl::StatusOr<std::string> OpenMetadata(const TenantKey& key,
                                         std::string_view context,
                                         std::span<const uint8_t> sealed) {
  absl::StatusOr<ChunkCipher> c = ChunkCipher::Create(key);
  if (!c.ok()) return c.status();
  return c->OpenMetadata(context, sealed);
}

}  // namespace cbtd::transport
