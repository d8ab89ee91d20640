#include "transport/chunk_hash.h"

#include <gtest/gtest.h>

#include <string>

namespace cbtd::transport {
namespace {

TEST(ChunkHashTest, Sha256OfKnownInput) {
  const std::string abc = "abc";
  const ChunkHash h = ChunkHash::Sha256(
      {reinterpret_cast<const uint8_t*>(abc.data()), abc.size()});
  EXPECT_EQ(h.ToHex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ChunkHashTest, HexAndBytesRoundTrip) {
  const ChunkHash h = ChunkHash::Sha256({});
  auto from_hex = ChunkHash::FromHex(h.ToHex());
  ASSERT_TRUE(from_hex.ok()) << from_hex.status();
  EXPECT_EQ(*from_hex, h);
  auto from_bytes = ChunkHash::FromBytes(h.ToBytes());
  ASSERT_TRUE(from_bytes.ok()) << from_bytes.status();
  EXPECT_EQ(*from_bytes, h);
}

TEST(ChunkHashTest, RejectsMalformedInputNamingIt) {
  auto short_hex = ChunkHash::FromHex("abcd");
  ASSERT_FALSE(short_hex.ok());
  EXPECT_NE(short_hex.status().message().find("'abcd'"), std::string::npos);
  auto bad_digit = ChunkHash::FromHex(std::string(64, 'g'));
  EXPECT_FALSE(bad_digit.ok());
  EXPECT_FALSE(ChunkHash::FromBytes("too short").ok());
}

}  // namespace
}  // namespace cbtd::transport
