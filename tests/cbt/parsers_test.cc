// Table-driven tests of the thin_delta and era_invalidate XML parsers and
// the COW exception-store reader, plus the fixtures captured in the VM.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cbt/cow_store.h"
#include "cbt/era_xml.h"
#include "cbt/thin_delta_xml.h"

namespace cbtd::cbt {
namespace {

constexpr uint64_t kK = 1024;
constexpr uint64_t kBlock = 64 * kK;  // data_block_size="128"

std::string ThinXml(const std::string& body, const std::string& dbs = "128") {
  return "<superblock uuid=\"\" time=\"1\" transaction=\"2\" "
         "data_block_size=\"" +
         dbs +
         "\" nr_data_blocks=\"1600\">\n  <diff left=\"1\" right=\"2\">\n" +
         body + "  </diff>\n</superblock>\n";
}

struct ThinRow {
  const char* name;
  std::string xml;
  std::vector<Extent> changed;
  std::vector<Extent> zeroed;
};

class ThinDeltaParseTest : public testing::TestWithParam<ThinRow> {};

TEST_P(ThinDeltaParseTest, Parses) {
  absl::StatusOr<ThinDelta> d = ParseThinDeltaXml(GetParam().xml);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->changed_bytes.ToVector(), GetParam().changed);
  EXPECT_EQ(d->zeroed_bytes.ToVector(), GetParam().zeroed);
  EXPECT_EQ(d->left_thin_id, 1u);
  EXPECT_EQ(d->right_thin_id, 2u);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, ThinDeltaParseTest,
    testing::Values(
        ThinRow{"empty_diff", ThinXml(""), {}, {}},
        ThinRow{"same_ignored",
                ThinXml("<same begin=\"0\" length=\"100\"/>\n"),
                {},
                {}},
        ThinRow{"different_and_right_only_merge",
                ThinXml("<different begin=\"4\" length=\"1\"/>\n"
                        "<right_only begin=\"5\" length=\"2\"/>\n"),
                {{4 * kBlock, 3 * kBlock}},
                {}},
        ThinRow{"left_only_is_zeroed",
                ThinXml("<same begin=\"0\" length=\"4\"/>\n"
                        "<left_only begin=\"4\" length=\"2\"/>\n"
                        "<right_only begin=\"9\" length=\"1\"/>\n"),
                {{9 * kBlock, kBlock}},
                {{4 * kBlock, 2 * kBlock}}},
        ThinRow{"verbose_form",
                ThinXml("<different begin=\"3\" left_data_begin=\"7\" "
                        "right_data_begin=\"20\" length=\"1\"/>\n"
                        "<right_only begin=\"8\" data_begin=\"21\" "
                        "length=\"1\"/>\n"),
                {{3 * kBlock, kBlock}, {8 * kBlock, kBlock}},
                {}},
        ThinRow{"large_block_size",
                ThinXml("<right_only begin=\"1\" length=\"1\"/>\n", "2048"),
                {{1024 * kK, 1024 * kK}},
                {}}),
    [](const auto& row) { return std::string(row.param.name); });

struct BadRow {
  const char* name;
  std::string xml;
  const char* message_part;
};

class ThinDeltaRejectTest : public testing::TestWithParam<BadRow> {};

TEST_P(ThinDeltaRejectTest, Rejects) {
  absl::StatusOr<ThinDelta> d = ParseThinDeltaXml(GetParam().xml);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find(GetParam().message_part),
            absl::string_view::npos)
      << d.status();
}

INSTANTIATE_TEST_SUITE_P(
    Rows, ThinDeltaRejectTest,
    testing::Values(
        BadRow{"empty", "", "not well-formed"},
        BadRow{
            "truncated",
            ThinXml("<different begin=\"4\" length=\"1\"/>\n").substr(0, 150),
            "not well-formed"},
        BadRow{"wrong_root", "<blocks/>", "<superblock>"},
        BadRow{"no_diff", "<superblock data_block_size=\"128\"></superblock>",
               "no <diff>"},
        BadRow{"unknown_element", ThinXml("<moved begin=\"1\" length=\"1\"/>"),
               "unexpected element <moved>"},
        BadRow{"missing_length", ThinXml("<different begin=\"1\"/>"),
               "lacks attribute 'length'"},
        BadRow{"negative", ThinXml("<different begin=\"-1\" length=\"1\"/>"),
               "not a decimal"},
        BadRow{"hex", ThinXml("<different begin=\"0x10\" length=\"1\"/>"),
               "not a decimal"},
        BadRow{"overflow",
               ThinXml("<different begin=\"18446744073709551615\" "
                       "length=\"1\"/>"),
               "overflows"},
        BadRow{"bad_block_size", ThinXml("", "7"), "block size"},
        BadRow{"text_content", ThinXml("garbage\n"), "text content"},
        BadRow{"range_outside_diff",
               "<superblock data_block_size=\"128\"><different begin=\"1\" "
               "length=\"1\"/><diff left=\"1\" right=\"2\"/></superblock>",
               "outside <diff>"}),
    [](const auto& row) { return std::string(row.param.name); });

struct EraRow {
  const char* name;
  std::string xml;
  std::vector<Extent> expected;
};

class EraParseTest : public testing::TestWithParam<EraRow> {};

TEST_P(EraParseTest, Parses) {
  absl::StatusOr<ExtentSet> s = ParseEraInvalidateXml(GetParam().xml, 128);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ToVector(), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, EraParseTest,
    testing::Values(EraRow{"empty", "<blocks>\n</blocks>\n", {}},
                    EraRow{"one_block",
                           "<blocks><block block=\"5\"/></blocks>",
                           {{5 * kBlock, kBlock}}},
                    EraRow{"range_end_exclusive",
                           "<blocks><range begin=\"8\" end=\"12\"/></blocks>",
                           {{8 * kBlock, 4 * kBlock}}},
                    EraRow{"block_and_range_merge",
                           "<blocks>\n  <block block=\"7\"/>\n  <range "
                           "begin=\"8\" end=\"10\"/>\n</blocks>",
                           {{7 * kBlock, 3 * kBlock}}}),
    [](const auto& row) { return std::string(row.param.name); });

class EraRejectTest : public testing::TestWithParam<BadRow> {};

TEST_P(EraRejectTest, Rejects) {
  absl::StatusOr<ExtentSet> s = ParseEraInvalidateXml(GetParam().xml, 128);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(GetParam().message_part),
            absl::string_view::npos)
      << s.status();
}

INSTANTIATE_TEST_SUITE_P(
    Rows, EraRejectTest,
    testing::Values(
        BadRow{"truncated", "<blocks><block block=\"5\"/>", "not well-formed"},
        BadRow{"wrong_root", "<superblock/>", "<blocks>"},
        BadRow{"reversed", "<blocks><range begin=\"9\" end=\"9\"/></blocks>",
               "empty or reversed"},
        BadRow{"unknown", "<blocks><blk block=\"1\"/></blocks>",
               "unexpected element"},
        BadRow{"nested",
               "<blocks><range begin=\"1\" end=\"2\"><block block=\"1\"/>"
               "</range></blocks>",
               "nested"},
        BadRow{"missing_attr", "<blocks><block/></blocks>", "lacks attribute"},
        BadRow{"overflow",
               "<blocks><block block=\"18446744073709551615\"/></blocks>",
               "overflows"}),
    [](const auto& row) { return std::string(row.param.name); });

// --- COW store -----------------------------------------------------------

void PutLe32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}
void PutLe64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}

// A COW store of `chunks` chunks of 8 sectors (4 KiB, 256 exceptions per
// area) holding exceptions for `old_chunks` in order.
std::string CowImage(const std::vector<uint64_t>& old_chunks,
                     uint64_t chunks = 1200, uint32_t magic = kCowMagic,
                     uint32_t valid = 1, uint32_t version = 1,
                     uint32_t chunk_sectors = 8) {
  const uint64_t cb = 4096;
  const uint64_t per_area = cb / 16;
  std::string img(chunks * cb, '\0');
  PutLe32(img, 0, magic);
  PutLe32(img, 4, valid);
  PutLe32(img, 8, version);
  PutLe32(img, 12, chunk_sectors);
  uint64_t next_data = 2;
  for (size_t i = 0; i < old_chunks.size(); ++i) {
    const uint64_t area = i / per_area;
    const uint64_t slot = i % per_area;
    const uint64_t area_chunk = 1 + area * (per_area + 1);
    if (next_data == area_chunk) ++next_data;  // skip metadata chunks
    const size_t at = area_chunk * cb + slot * 16;
    PutLe64(img, at, old_chunks[i]);
    PutLe64(img, at + 8, next_data++);
  }
  return img;
}

TEST(CowStoreTest, EmptyTable) {
  common::MemoryBlockReader r("cow", CowImage({}));
  absl::StatusOr<CowTable> t = ReadCowTable(r, 100 * 4096);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->exceptions, 0u);
  EXPECT_TRUE(t->origin_bytes.empty());
  EXPECT_EQ(t->chunk_sectors, 8u);
}

TEST(CowStoreTest, ExceptionsBecomeOriginChunks) {
  common::MemoryBlockReader r("cow", CowImage({3, 4, 9}));
  absl::StatusOr<CowTable> t = ReadCowTable(r, 100 * 4096);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->exceptions, 3u);
  EXPECT_EQ(t->origin_bytes,
            (ExtentSet{{3 * 4096, 2 * 4096}, {9 * 4096, 4096}}));
}

TEST(CowStoreTest, LastPartialChunkClippedToOrigin) {
  common::MemoryBlockReader r("cow", CowImage({2}));
  absl::StatusOr<CowTable> t = ReadCowTable(r, 2 * 4096 + 100);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->origin_bytes, (ExtentSet{{2 * 4096, 100}}));
}

TEST(CowStoreTest, FullAreaContinuesInNextArea) {
  std::vector<uint64_t> olds;
  for (uint64_t i = 0; i < 300; ++i) olds.push_back(i * 2);  // 256 + 44
  common::MemoryBlockReader r("cow", CowImage(olds));
  absl::StatusOr<CowTable> t = ReadCowTable(r, 1000 * 4096);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->exceptions, 300u);
  EXPECT_TRUE(t->origin_bytes.Contains({598 * 4096, 4096}));
  EXPECT_EQ(t->origin_bytes.TotalBytes(), 300 * 4096u);
}

struct CowBadRow {
  const char* name;
  std::string image;
  absl::StatusCode code;
  const char* message_part;
};

class CowRejectTest : public testing::TestWithParam<CowBadRow> {};

TEST_P(CowRejectTest, Rejects) {
  common::MemoryBlockReader r("/dev/mapper/vg-s-cow", GetParam().image);
  absl::StatusOr<CowTable> t = ReadCowTable(r, 1000 * 4096);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), GetParam().code) << t.status();
  EXPECT_NE(t.status().message().find(GetParam().message_part),
            absl::string_view::npos)
      << t.status();
  EXPECT_NE(t.status().message().find("/dev/mapper/vg-s-cow"),
            absl::string_view::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, CowRejectTest,
    testing::Values(
        CowBadRow{"wrong_magic", CowImage({1}, 1200, 0x12345678),
                  absl::StatusCode::kDataLoss, "magic"},
        CowBadRow{"zero_magic", CowImage({}, 1200, 0),
                  absl::StatusCode::kDataLoss, "magic"},
        CowBadRow{"invalid_flag", CowImage({1}, 1200, kCowMagic, 0),
                  absl::StatusCode::kFailedPrecondition, "invalid"},
        CowBadRow{"odd_valid_flag", CowImage({1}, 1200, kCowMagic, 7),
                  absl::StatusCode::kDataLoss, "valid flag"},
        CowBadRow{"version", CowImage({1}, 1200, kCowMagic, 1, 2),
                  absl::StatusCode::kDataLoss, "version"},
        CowBadRow{"chunk_size", CowImage({1}, 1200, kCowMagic, 1, 1, 12),
                  absl::StatusCode::kDataLoss, "chunk size"},
        CowBadRow{"header_truncated", CowImage({1}).substr(0, 10),
                  absl::StatusCode::kDataLoss, "truncated"},
        CowBadRow{"first_area_missing", CowImage({1}).substr(0, 4096),
                  absl::StatusCode::kDataLoss, "truncated"},
        CowBadRow{"truncated_before_data",
                  CowImage(std::vector<uint64_t>(300, 1)).substr(0, 100 * 4096),
                  absl::StatusCode::kDataLoss, "corrupt COW exception"},
        CowBadRow{"exception_beyond_origin", CowImage({5000}),
                  absl::StatusCode::kDataLoss, "corrupt COW exception"}),
    [](const auto& row) { return std::string(row.param.name); });

// --- fixtures captured in the VM (tests/cbt/fixtures/README.md) ------------

std::string ReadFixture(const std::string& name) {
  std::ifstream in("tests/cbt/fixtures/" + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FixtureTest, ThinDelta) {
  const std::string xml = ReadFixture("thin_delta.xml");
  ASSERT_FALSE(xml.empty()) << "fixture missing";
  absl::StatusOr<ThinDelta> d = ParseThinDeltaXml(xml);
  ASSERT_TRUE(d.ok()) << d.status();
  // The VM case wrote block 1, discarded blocks 4-5 and wrote block 8+ of
  // a thin volume with 64 KiB blocks (see cbt_fixtures.sh).
  EXPECT_EQ(d->data_block_sectors, 128u);
  EXPECT_TRUE(d->changed_bytes.Contains({kBlock, kBlock}));
  EXPECT_TRUE(d->changed_bytes.Contains({8 * kBlock, kBlock}));
  EXPECT_TRUE(d->zeroed_bytes.Contains({4 * kBlock, 2 * kBlock}));
}

TEST(FixtureTest, EraInvalidate) {
  const std::string xml = ReadFixture("era_invalidate.xml");
  ASSERT_FALSE(xml.empty()) << "fixture missing";
  absl::StatusOr<ExtentSet> s = ParseEraInvalidateXml(xml, 128);
  ASSERT_TRUE(s.ok()) << s.status();
  // Blocks 3, 4 and 10 written (cbt_fixtures.sh).
  EXPECT_EQ(*s, (ExtentSet{{3 * kBlock, 2 * kBlock}, {10 * kBlock, kBlock}}));
}

TEST(FixtureTest, CowStore) {
  const std::string img = ReadFixture("cow_store.bin");
  ASSERT_FALSE(img.empty()) << "fixture missing";
  common::MemoryBlockReader r("cow_store.bin", img);
  absl::StatusOr<CowTable> t = ReadCowTable(r, 64 * 1024 * 1024);
  ASSERT_TRUE(t.ok()) << t.status();
  // 4 KiB chunks; origin bytes 8 KiB and 1 MiB + 5 written.
  EXPECT_EQ(t->chunk_sectors, 8u);
  EXPECT_EQ(t->origin_bytes,
            (ExtentSet{{8 * kK, 4 * kK}, {1024 * kK, 4 * kK}}));
}

}  // namespace
}  // namespace cbtd::cbt
