#include "cbt/extent_set.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace cbtd::cbt {
namespace {

struct AddRow {
  const char* name;
  std::vector<Extent> adds;
  std::vector<Extent> expected;
};

class ExtentSetAddTest : public testing::TestWithParam<AddRow> {};

TEST_P(ExtentSetAddTest, MergesToExpected) {
  ExtentSet s;
  for (const Extent& e : GetParam().adds) s.Add(e);
  EXPECT_EQ(s.ToVector(), GetParam().expected) << s;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, ExtentSetAddTest,
    testing::Values(
        AddRow{"empty_ignored", {{5, 0}}, {}},
        AddRow{"single", {{0, 10}}, {{0, 10}}},
        AddRow{"disjoint_sorted", {{20, 5}, {0, 5}}, {{0, 5}, {20, 5}}},
        AddRow{"touching_merge", {{0, 5}, {5, 5}}, {{0, 10}}},
        AddRow{"overlap_merge", {{0, 6}, {4, 6}}, {{0, 10}}},
        AddRow{"contained", {{0, 10}, {2, 3}}, {{0, 10}}},
        AddRow{"bridges_three", {{0, 2}, {4, 2}, {8, 2}, {1, 8}}, {{0, 10}}},
        AddRow{"covers_all", {{3, 1}, {6, 1}, {0, 100}}, {{0, 100}}},
        AddRow{"near_max",
               {{UINT64_MAX - 10, 10}, {UINT64_MAX - 20, 10}},
               {{UINT64_MAX - 20, 20}}}),
    [](const testing::TestParamInfo<AddRow>& row) { return row.param.name; });

TEST(ExtentSetTest, RemoveSplits) {
  ExtentSet s{{0, 100}};
  s.Remove(Extent{10, 10});
  s.Remove(Extent{90, 20});
  EXPECT_EQ(s.ToVector(), (std::vector<Extent>{{0, 10}, {20, 70}}));
  EXPECT_EQ(s.TotalBytes(), 80u);
}

TEST(ExtentSetTest, ContainsAndIntersects) {
  ExtentSet s{{10, 10}, {30, 10}};
  EXPECT_TRUE(s.Contains({10, 10}));
  EXPECT_TRUE(s.Contains({12, 3}));
  EXPECT_FALSE(s.Contains({15, 10}));
  EXPECT_FALSE(s.Contains({0, 1}));
  EXPECT_TRUE(s.Intersects({15, 10}));
  EXPECT_TRUE(s.Intersects({0, 11}));
  EXPECT_FALSE(s.Intersects({20, 10}));
  EXPECT_FALSE(s.Intersects({40, 5}));
}

TEST(ExtentSetTest, IntersectionOfInterleavedSets) {
  ExtentSet a{{0, 10}, {20, 10}};
  ExtentSet b{{5, 20}};
  EXPECT_EQ(a.Intersection(b).ToVector(),
            (std::vector<Extent>{{5, 5}, {20, 5}}));
}

TEST(ExtentSetTest, AlignedToWidensAndClipsToVolumeEnd) {
  // Volume of 10000 bytes, chunks of 4096: the last chunk is partial.
  ExtentSet s{{1, 1}, {4095, 2}, {9000, 5000}};
  EXPECT_EQ(s.AlignedTo(4096, 10000).ToVector(),
            (std::vector<Extent>{{0, 10000}}));
  ExtentSet t{{5000, 1}};
  EXPECT_EQ(t.AlignedTo(4096, 10000).ToVector(),
            (std::vector<Extent>{{4096, 4096}}));
}

TEST(ExtentSetTest, ChunkIndicesDeduplicatesSharedChunks) {
  ExtentSet s{{0, 1}, {100, 1}, {4096, 8192}, {20000, 1}};
  EXPECT_EQ(s.ChunkIndices(4096), (std::vector<uint64_t>{0, 1, 2, 4}));
}

// Property: after random adds and removes the set equals a byte bitmap.
TEST(ExtentSetTest, MatchesBitmapModelUnderRandomOps) {
  const unsigned seed = testing::UnitTest::GetInstance()->random_seed();
  std::mt19937 rng(seed);
  constexpr uint64_t kSize = 512;
  for (int round = 0; round < 200; ++round) {
    std::vector<bool> model(kSize, false);
    ExtentSet s;
    for (int op = 0; op < 20; ++op) {
      const uint64_t off = rng() % kSize;
      const uint64_t len = rng() % (kSize - off + 1);
      const bool add = rng() % 3 != 0;
      for (uint64_t i = off; i < off + len; ++i) model[i] = add;
      if (add) {
        s.Add(off, len);
      } else {
        s.Remove(Extent{off, len});
      }
    }
    ExtentSet from_model;
    for (uint64_t i = 0; i < kSize; ++i) {
      if (model[i]) from_model.Add(i, 1);
    }
    ASSERT_EQ(s, from_model) << "seed " << seed << " round " << round;
  }
}

}  // namespace
}  // namespace cbtd::cbt
