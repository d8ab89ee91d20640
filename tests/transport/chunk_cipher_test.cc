#include "transport/chunk_cipher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "transport/tenant_key.h"

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;

TenantKey NewKey() {
  absl::StatusOr<TenantKey> key = TenantKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

std::string Pattern(size_t size, uint8_t seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

class ChunkCipherTest : public ::testing::Test {
 protected:
  ChunkCipher NewCipher(const TenantKey& key) {
    absl::StatusOr<ChunkCipher> c = ChunkCipher::Create(key);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }
  ChunkHash Id(ChunkCipher& c, const std::string& data) {
    absl::StatusOr<ChunkHash> id = c.KeyedChunkId(AsBytes(data));
    EXPECT_TRUE(id.ok()) << id.status();
    return *id;
  }
  std::string Seal(ChunkCipher& c, const ChunkHash& id,
                   const std::string& data) {
    absl::StatusOr<std::string> sealed = c.SealChunk(id, AsBytes(data));
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return *sealed;
  }

  TenantKey key_ = NewKey();
  ChunkCipher cipher_ = NewCipher(key_);
};

TEST_F(ChunkCipherTest, ChunkRoundTripsAtEverySize) {
  for (size_t size : {0, 1, 15, 16, 17, 4096, 65536, 65536 + 3}) {
    const std::string data = Pattern(size, 1);
    const ChunkHash id = Id(cipher_, data);
    const std::string sealed = Seal(cipher_, id, data);
    EXPECT_EQ(sealed.size(), size + kSealOverhead);
    if (size >= 16) {
      EXPECT_EQ(sealed.find(data.substr(0, 16)), std::string::npos)
          << "plaintext visible in the sealed chunk";
    }
    absl::StatusOr<std::string> opened = cipher_.OpenChunk(id, AsBytes(sealed));
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, data) << size;
  }
}

TEST_F(ChunkCipherTest, SealingTwiceGivesDifferentBytesThatBothOpen) {
  const std::string data = Pattern(1000, 2);
  const ChunkHash id = Id(cipher_, data);
  const std::string a = Seal(cipher_, id, data);
  const std::string b = Seal(cipher_, id, data);
  EXPECT_NE(a, b) << "the nonce must be fresh per seal";
  EXPECT_EQ(*cipher_.OpenChunk(id, AsBytes(a)), data);
  EXPECT_EQ(*cipher_.OpenChunk(id, AsBytes(b)), data);
}

TEST_F(ChunkCipherTest, IdsAreDeterministicPerKeyAndDifferAcrossKeys) {
  const std::string data = Pattern(65536, 3);
  const ChunkHash id = Id(cipher_, data);
  EXPECT_EQ(Id(cipher_, data), id) << "same key, same chunk: same id";
  ChunkCipher again = NewCipher(key_);
  EXPECT_EQ(Id(again, data), id) << "a new cipher of the same key agrees";
  EXPECT_EQ(*KeyedChunkId(key_, AsBytes(data)), id);

  ChunkCipher other = NewCipher(NewKey());
  EXPECT_NE(Id(other, data), id) << "another tenant gets another id";
  EXPECT_NE(id, ChunkHash::Sha256(AsBytes(data)))
      << "the id must not be the unkeyed content hash";
  EXPECT_NE(Id(cipher_, Pattern(65536, 4)), id);
}

TEST_F(ChunkCipherTest, IdIsHmacSha256UnderTheIdKey) {
  // A known answer computed with the openssl command line, independently
  // of this code, for the all-zero secret:
  //   openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:00..00
  //     -kdfopt salt:cbtd-tenant-key-v1 -kdfopt "info:cbtd id_key" HKDF
  //   printf abc | openssl mac -digest SHA256 -macopt hexkey:<id_key> HMAC
  const TenantKey::Bytes secret{};  // all zero
  absl::StatusOr<TenantKey> key = TenantKey::FromSecret(secret);
  ASSERT_TRUE(key.ok());
  ChunkCipher c = NewCipher(*key);
  const std::string data = "abc";
  EXPECT_EQ(Id(c, data).ToHex(),
            "2c14e1fe86c99710a009aa8a7dc86d715714624a63d16c1febd161c99b2b560f");
}

TEST_F(ChunkCipherTest, EveryFlippedBitOfASmallChunkIsDetected) {
  const std::string data = Pattern(48, 5);
  const ChunkHash id = Id(cipher_, data);
  const std::string sealed = Seal(cipher_, id, data);
  for (size_t byte = 0; byte < sealed.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = sealed;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      absl::StatusOr<std::string> opened = cipher_.OpenChunk(id, AsBytes(bad));
      ASSERT_FALSE(opened.ok())
          << "flip of byte " << byte << " bit " << bit << " went unnoticed";
      // Header bytes 1..8 are the key fingerprint: a flip there reads as
      // "another key"; anywhere else it is damage.
      const absl::StatusCode want = byte >= 1 && byte <= 8
                                        ? absl::StatusCode::kFailedPrecondition
                                        : absl::StatusCode::kDataLoss;
      EXPECT_EQ(opened.status().code(), want)
          << "byte " << byte << ": " << opened.status();
    }
  }
}

TEST_F(ChunkCipherTest, TruncatedChunkIsDataLossAtEveryLength) {
  const std::string data = Pattern(100, 6);
  const ChunkHash id = Id(cipher_, data);
  const std::string sealed = Seal(cipher_, id, data);
  for (size_t len = 0; len < sealed.size(); ++len) {
    absl::StatusOr<std::string> opened =
        cipher_.OpenChunk(id, AsBytes(std::string_view(sealed).substr(0, len)));
    ASSERT_FALSE(opened.ok()) << len;
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << len;
  }
  absl::StatusOr<std::string> opened =
      cipher_.OpenChunk(id, AsBytes(sealed.substr(0, 10)));
  EXPECT_THAT(opened.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(opened.status().message(), HasSubstr(id.ToHex()));
}

TEST_F(ChunkCipherTest, WrongKeyIsRefusedNamingBothFingerprints) {
  const std::string data = Pattern(4096, 7);
  const ChunkHash id = Id(cipher_, data);
  const std::string sealed = Seal(cipher_, id, data);
  const TenantKey other_key = NewKey();
  ChunkCipher other = NewCipher(other_key);
  absl::StatusOr<std::string> opened = other.OpenChunk(id, AsBytes(sealed));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(opened.status().message(),
              HasSubstr("sealed under key " + key_.fingerprint()));
  EXPECT_THAT(opened.status().message(), HasSubstr(other_key.fingerprint()));
  EXPECT_THAT(opened.status().message(), HasSubstr("cbtctl key import"));
}

TEST_F(ChunkCipherTest, WrongKeyWithAForgedFingerprintDoesNotAuthenticate) {
  const std::string data = Pattern(4096, 8);
  const ChunkHash id = Id(cipher_, data);
  std::string sealed = Seal(cipher_, id, data);
  const TenantKey other_key = NewKey();
  // Make the header claim the other key: the tag still fails.
  std::copy(other_key.fingerprint_bytes().begin(),
            other_key.fingerprint_bytes().end(), sealed.begin() + 1);
  absl::StatusOr<std::string> opened =
      NewCipher(other_key).OpenChunk(id, AsBytes(sealed));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("does not authenticate"));
}

TEST_F(ChunkCipherTest, CiphertextMovedUnderAnotherIdIsRefused) {
  const std::string a = Pattern(4096, 9), b = Pattern(4096, 10);
  const ChunkHash id_a = Id(cipher_, a), id_b = Id(cipher_, b);
  const std::string sealed_a = Seal(cipher_, id_a, a);
  absl::StatusOr<std::string> opened =
      cipher_.OpenChunk(id_b, AsBytes(sealed_a));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(),
              HasSubstr("chunk " + id_b.ToHex() + " does not authenticate"));
  EXPECT_THAT(opened.status().message(), HasSubstr("another chunk id"));
}

TEST_F(ChunkCipherTest, UnknownFormatVersionSaysSo) {
  const std::string data = Pattern(10, 11);
  const ChunkHash id = Id(cipher_, data);
  std::string sealed = Seal(cipher_, id, data);
  sealed[0] = 2;
  absl::StatusOr<std::string> opened = cipher_.OpenChunk(id, AsBytes(sealed));
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("format version 2"));
}

TEST_F(ChunkCipherTest, MetadataRoundTripsAndIsBoundToItsContext) {
  const std::string meta = "index of db@v7";
  absl::StatusOr<std::string> sealed =
      cipher_.SealMetadata("h1/db@v7", AsBytes(meta));
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), meta.size() + kSealOverhead);
  EXPECT_EQ(*cipher_.OpenMetadata("h1/db@v7", AsBytes(*sealed)), meta);
  EXPECT_EQ(*OpenMetadata(key_, "h1/db@v7", AsBytes(*sealed)), meta);

  absl::StatusOr<std::string> moved =
      cipher_.OpenMetadata("h1/db@v8", AsBytes(*sealed));
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(moved.status().message(),
              HasSubstr("metadata 'h1/db@v8' does not authenticate"));

  absl::StatusOr<std::string> wrong =
      NewCipher(NewKey()).OpenMetadata("h1/db@v7", AsBytes(*sealed));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ChunkCipherTest, ChunkAndMetadataKeysAreSeparate) {
  // A chunk sealed for id X does not open as metadata whose context is
  // X's bytes, and vice versa: different keys.
  const std::string data = Pattern(64, 12);
  const ChunkHash id = Id(cipher_, data);
  const std::string sealed = Seal(cipher_, id, data);
  EXPECT_FALSE(cipher_.OpenMetadata(id.ToBytes(), AsBytes(sealed)).ok());
  absl::StatusOr<std::string> meta =
      cipher_.SealMetadata(id.ToBytes(), AsBytes(data));
  ASSERT_TRUE(meta.ok());
  EXPECT_FALSE(cipher_.OpenChunk(id, AsBytes(*meta)).ok());
}

TEST_F(ChunkCipherTest, OneOffFunctionsAgreeWithTheCipher) {
  const std::string data = Pattern(300, 13);
  const ChunkHash id = *KeyedChunkId(key_, AsBytes(data));
  absl::StatusOr<std::string> sealed = SealChunk(key_, id, AsBytes(data));
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(*cipher_.OpenChunk(id, AsBytes(*sealed)), data);
  EXPECT_EQ(*OpenChunk(key_, id, AsBytes(Seal(cipher_, id, data))), data);
}

}  // namespace
}  // namespace cbtd::transport
