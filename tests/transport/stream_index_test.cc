#include "transport/stream_index.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace cbtd::transport {
namespace {

using ::testing::HasSubstr;

ChunkHash Of(std::string_view s) {
  return ChunkHash::Sha256(
      {reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

// Pins the documented definition (docs/vault.md); the value was computed
// independently with Python's hashlib.
TEST(RootHashTest, MatchesTheDocumentedDefinition) {
  const std::vector<ChunkHash> entries = {Of("a"), kZeroEntry, Of("b")};
  EXPECT_EQ(ComputeRootHash(10000, 4096, entries).ToHex(),
            "f7f380c1ef7b62fdba54335fca6300512dfd7c57c24ee78669a1aef81516ba7a");
}

TEST(RootHashTest, ZeroChunkIsTheZeroEntryNotTheHashOfZeros) {
  const std::string zeros(4096, '\0');
  EXPECT_EQ(EntryOf({reinterpret_cast<const uint8_t*>(zeros.data()), 4096}),
            kZeroEntry);
}

TEST(ChunkGridTest, CountAndShortLastChunk) {
  EXPECT_EQ(ChunkCount(10000, 4096), 3u);
  EXPECT_EQ(ChunkLength(10000, 4096, 2), 10000u - 8192u);
  EXPECT_EQ(ChunkLength(10000, 4096, 3), 0u);
}

VersionIndex Sample() {
  VersionIndex idx;
  idx.host = "h";
  idx.volume = "v";
  idx.version_id = "x";
  idx.base_version_id = "w";
  idx.volume_size_bytes = 10000;
  idx.chunk_size_bytes = 4096;
  idx.created_unix_ms = 123;
  idx.entries = {Of("a"), kZeroEntry, Of("b")};
  idx.root_hash = ComputeRootHash(10000, 4096, idx.entries);
  idx.stats.new_objects = 2;
  return idx;
}

TEST(IndexCodecTest, RoundTrips) {
  const VersionIndex idx = Sample();
  auto back = DecodeIndex(EncodeIndex(idx), "x.idx");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->host, "h");
  EXPECT_EQ(back->base_version_id, "w");
  EXPECT_EQ(back->entries, idx.entries);
  EXPECT_EQ(back->root_hash, idx.root_hash);
  EXPECT_EQ(back->created_unix_ms, 123);
  EXPECT_EQ(back->stats.new_objects, 2u);
}

TEST(IndexCodecTest, AnyFlippedByteIsDataLossNamingTheObject) {
  const std::string enc = EncodeIndex(Sample());
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x20;
    auto back = DecodeIndex(bad, "hosts/h/v/versions/x.idx");
    ASSERT_FALSE(back.ok()) << "flip at " << i;
    EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(back.status().message()),
                HasSubstr("hosts/h/v/versions/x.idx"));
  }
}

TEST(IndexCodecTest, TruncatedIsDataLoss) {
  const std::string enc = EncodeIndex(Sample());
  for (size_t n = 0; n < enc.size(); n += 7) {
    EXPECT_FALSE(DecodeIndex(enc.substr(0, n), "x").ok()) << n;
  }
}

}  // namespace
}  // namespace cbtd::transport
