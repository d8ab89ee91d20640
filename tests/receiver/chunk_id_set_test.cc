// ChunkIdSet: verify's set of chunk ids on disk.
#include "receiver/chunk_id_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace cbtd::receiver {
namespace {

using transport::ChunkHash;

ChunkHash Id(uint64_t n) {
  std::array<uint8_t, ChunkHash::kSize> b{};
  std::mt19937_64 rng(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return ChunkHash(b);
}

TEST(ChunkIdSetTest, HoldsEachIdOnceAndGivesThemBackInOrder) {
  auto set = ChunkIdSet::Create();
  ASSERT_TRUE(set.ok()) << set.status();
  std::set<ChunkHash> expected;
  std::vector<ChunkHash> batch;
  for (uint64_t n = 0; n < 60'000; ++n) {
    batch.push_back(Id(n % 50'000));  // 10,000 added twice
    expected.insert(batch.back());
    if (batch.size() == 7'000) {
      ASSERT_TRUE((*set)->Add(batch).ok());
      batch.clear();
    }
  }
  ASSERT_TRUE((*set)->Add(batch).ok());
  EXPECT_EQ((*set)->size(), 50'000u);
  std::vector<ChunkHash> got;
  std::optional<ChunkHash> after;
  for (;;) {
    auto round = (*set)->Next(after, 4096);
    ASSERT_TRUE(round.ok()) << round.status();
    if (round->empty()) break;
    EXPECT_LE(round->size(), 4096u);
    after = round->back();
    got.insert(got.end(), round->begin(), round->end());
  }
  EXPECT_TRUE(
      std::equal(got.begin(), got.end(), expected.begin(), expected.end()))
      << got.size() << " ids back of " << expected.size();
}

}  // namespace
}  // namespace cbtd::receiver
