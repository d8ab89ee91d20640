#include "cbt/changed_set.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cbt/external_method.h"
#include "cbt/hash_method.h"

namespace cbtd::cbt {
namespace {

class RecordingEmitter : public ChangedSetEmitter {
 public:
  void Begin(const ChangedSet&) override { log += "B"; }
  void Changed(const Extent& e) override {
    log += " c" + std::to_string(e.offset_bytes);
  }
  void Zeroed(const Extent& e) override {
    log += " z" + std::to_string(e.offset_bytes);
  }
  void End() override { log += " E"; }
  std::string log;
};

TEST(ChangedSetTest, EmitsInOffsetOrder) {
  ChangedSet s;
  s.changed = ExtentSet{{0, 10}, {50, 10}};
  s.zeroed = ExtentSet{{20, 10}, {100, 1}};
  RecordingEmitter e;
  Emit(s, e);
  EXPECT_EQ(e.log, "B c0 z20 c50 z100 E");
}

TEST(ChangedSetTest, LostCoversWholeVolume) {
  ChangedSet s = ChangedSet::Lost(Method::kCowTable, 1000, "snapshot invalid");
  EXPECT_TRUE(s.lost);
  EXPECT_EQ(s.changed, (ExtentSet{{0, 1000}}));
  nlohmann::json j = nlohmann::json::parse(ChangedSetToJson(s));
  EXPECT_EQ(j["lost"], true);
  EXPECT_EQ(j["lost_reason"], "snapshot invalid");
  EXPECT_EQ(j["method"], "cow-table");
  EXPECT_EQ(j["changed_bytes"], 1000);
}

TEST(ChangedSetTest, JsonListsExtents) {
  ChangedSet s;
  s.method = Method::kThinDelta;
  s.changed = ExtentSet{{4096, 4096}};
  s.zeroed = ExtentSet{{0, 4096}};
  nlohmann::json j = nlohmann::json::parse(ChangedSetToJson(s));
  ASSERT_EQ(j["extents"].size(), 2u);
  EXPECT_EQ(j["extents"][0]["zero"], true);
  EXPECT_EQ(j["extents"][1]["offset"], 4096);
  EXPECT_EQ(j["zeroed_bytes"], 4096);
}

TEST(ChangedSetTest, MethodNamesRoundTrip) {
  for (Method m : {Method::kThinDelta, Method::kCowTable, Method::kEra,
                   Method::kHash, Method::kExternal}) {
    absl::StatusOr<Method> p = ParseMethod(MethodName(m));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, m);
  }
  EXPECT_FALSE(ParseMethod("bogus").ok());
}

// --- hash ------------------------------------------------------------------

TEST(HashMethodTest, FindsExactlyTheDifferingChunks) {
  std::string before(10 * 1024 + 100, 'a');  // last chunk partial
  common::MemoryBlockReader r0("before", before);
  absl::StatusOr<HashResult> base = ComputeHash(r0, 1024, nullptr);
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->set.changed, (ExtentSet{{0, 10 * 1024 + 100}}));

  std::string after = before;
  after[3 * 1024 + 7] = 'b';
  after[10 * 1024 + 99] = 'c';  // last partial chunk
  std::fill(after.begin() + 5 * 1024, after.begin() + 6 * 1024, '\0');
  common::MemoryBlockReader r1("after", after);
  VectorChunkHashes prev(1024, base->digests);
  absl::StatusOr<HashResult> h = ComputeHash(r1, 1024, &prev);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->set.changed, (ExtentSet{{3 * 1024, 1024}, {10 * 1024, 100}}));
  EXPECT_EQ(h->set.zeroed, (ExtentSet{{5 * 1024, 1024}}));
  EXPECT_FALSE(h->set.lost);
}

TEST(HashMethodTest, GrownDeviceNewChunksChanged) {
  common::MemoryBlockReader r0("v0", std::string(2048, 'x'));
  auto base = ComputeHash(r0, 1024, nullptr);
  ASSERT_TRUE(base.ok());
  common::MemoryBlockReader r1("v1", std::string(4096, 'x'));
  VectorChunkHashes prev(1024, base->digests);
  auto h = ComputeHash(r1, 1024, &prev);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->set.changed, (ExtentSet{{2048, 2048}}));
}

TEST(HashMethodTest, ChunkSizeMismatchRefused) {
  common::MemoryBlockReader r("v", std::string(100, 'x'));
  VectorChunkHashes prev(4096, {});
  EXPECT_EQ(ComputeHash(r, 1024, &prev).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- external --------------------------------------------------------------

struct ExternalRow {
  const char* name;
  const char* file;
  bool lost;
  std::vector<Extent> changed;
  const char* reason_part;
};

class ExternalTest : public testing::TestWithParam<ExternalRow> {};

TEST_P(ExternalTest, Row) {
  ChangedSet s = ComputeExternal(GetParam().file, "gen-7", 1 << 20);
  EXPECT_EQ(s.lost, GetParam().lost) << s.lost_reason;
  if (GetParam().lost) {
    EXPECT_EQ(s.changed, (ExtentSet{{0, 1 << 20}}));
    EXPECT_NE(s.lost_reason.find(GetParam().reason_part), std::string::npos)
        << s.lost_reason;
  } else {
    EXPECT_EQ(s.changed.ToVector(), GetParam().changed);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, ExternalTest,
    testing::Values(
        ExternalRow{
            "match",
            R"({"generation":"gen-7","extents":[[0,10],[5,10],[100,1]]})",
            false,
            {{0, 15}, {100, 1}},
            ""},
        ExternalRow{"generation_mismatch",
                    R"({"generation":"gen-6","extents":[[0,10]]})",
                    true,
                    {},
                    "does not match"},
        ExternalRow{"not_json", "0 10\n", true, {}, "not valid JSON"},
        ExternalRow{"negative",
                    R"({"generation":"gen-7","extents":[[-1,10]]})",
                    true,
                    {},
                    "not [offset_bytes"},
        ExternalRow{"beyond_volume",
                    R"({"generation":"gen-7","extents":[[1048570,10]]})",
                    true,
                    {},
                    "beyond the volume"}),
    [](const auto& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace cbtd::cbt
