#include "receiver/pack.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "receiver/vault.h"

namespace cbtd::receiver {
namespace {

using ::testing::HasSubstr;

ChunkHash IdOf(const std::string& bytes) {
  return ChunkHash::Sha256(
      {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

// A sealed pack of `n` records of different sizes; the records in `records`.
std::string MakePack(int n, std::vector<std::string>* records = nullptr) {
  std::vector<std::string> recs;  // the builder keeps views into them
  std::vector<ChunkHash> ids;
  for (int i = 0; i < n; ++i) {
    const std::string raw(100 + 37 * i, static_cast<char>('a' + i));
    recs.push_back(
        Vault::EncodeChunk(stream::COMPRESSION_NONE, raw.size(), raw));
    ids.push_back(IdOf(raw));
  }
  PackBuilder b;
  for (int i = 0; i < n; ++i) b.Add(ids[i], recs[i]);
  std::string pack = JoinParts(b.Seal());
  if (records) *records = recs;
  return pack;
}

TEST(PackTest, SealedPackListsEveryRecordWhereItIs) {
  std::vector<std::string> records;
  PackBuilder b;
  EXPECT_EQ(b.chunk_count(), 0u);
  const std::string pack = MakePack(5, &records);
  auto entries = ParsePack(pack, "p");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 5u);
  for (size_t i = 0; i < entries->size(); ++i) {
    const PackEntry& e = (*entries)[i];
    EXPECT_EQ(pack.substr(e.offset_bytes, e.length_bytes), records[i]);
    auto raw = DecodeChunkRecord(records[i], e.id, "chunk");
    EXPECT_TRUE(raw.ok()) << raw.status();
  }
}

TEST(PackTest, SizeBeforeSealIsTheSealedSize) {
  PackBuilder b;
  const std::string raw(5000, 'x');
  const std::string rec =
      Vault::EncodeChunk(stream::COMPRESSION_NONE, 5000, raw);
  b.Add(IdOf(raw), rec);
  const size_t predicted = b.size_bytes();
  EXPECT_EQ(JoinParts(b.Seal()).size(), predicted);
}

TEST(PackTest, EmptyPackParses) {
  PackBuilder empty;
  auto entries = ParsePack(JoinParts(empty.Seal()), "p");
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_TRUE(entries->empty());
}

// Any flipped byte outside the records (header, footer, trailer) makes the
// pack refused by name; inside a record, the record's own checksum fails.
TEST(PackTest, EveryFlippedByteIsDetected) {
  std::vector<std::string> records;
  const std::string pack = MakePack(3, &records);
  auto good = ParsePack(pack, "p");
  ASSERT_TRUE(good.ok());
  for (size_t at = 0; at < pack.size(); ++at) {
    std::string bad = pack;
    bad[at] ^= 0x01;
    auto entries = ParsePack(bad, "tenants/t/packs/ab/abc.pack");
    if (!entries.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(entries.status())) << at;
      EXPECT_THAT(std::string(entries.status().message()),
                  HasSubstr("tenants/t/packs/ab/abc.pack"));
      continue;
    }
    // The footer is intact, so the byte is inside a record.
    bool caught = false;
    for (const PackEntry& e : *entries) {
      auto raw = DecodeChunkRecord(bad.substr(e.offset_bytes, e.length_bytes),
                                   e.id, "chunk");
      caught = caught || !raw.ok();
    }
    EXPECT_TRUE(caught) << "flipped byte " << at << " went unnoticed";
  }
}

TEST(PackTest, TruncatedPackIsRefused) {
  const std::string pack = MakePack(4);
  for (size_t len : {size_t{0}, size_t{10}, pack.size() / 2, pack.size() - 1}) {
    auto entries = ParsePack(pack.substr(0, len), "p");
    EXPECT_TRUE(absl::IsDataLoss(entries.status())) << len;
  }
}

TEST(PackTest, NamesAreFreshHex) {
  std::set<std::string> names;
  for (int i = 0; i < 100; ++i) {
    const std::string n = NewPackName();
    EXPECT_EQ(n.size(), 32u);
    EXPECT_EQ(n.find_first_not_of("0123456789abcdef"), std::string::npos) << n;
    names.insert(n);
  }
  EXPECT_EQ(names.size(), 100u);
}

}  // namespace
}  // namespace cbtd::receiver
