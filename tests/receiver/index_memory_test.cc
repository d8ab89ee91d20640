// The bound of issue 14 as a test: the receiver's peak RSS does not grow
// with the volume. A receive and a GC against a base of 2 M entries (a
// 128 GiB volume; 64 MiB of entries, which the receiver held twice before
// it streamed indexes) must not raise the peak reached at 256 K entries
// by more than a fraction of the entries' size.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/common/temp_dir.h"
#include "tests/receiver/index_scale.h"

namespace cbtd::receiver::testing {
namespace {

TEST(IndexMemoryTest, PeakRssIsFlatFrom256KTo2MEntries) {
  // On disk, not /dev/shm: a tmpfs would not count in RSS anyway, but the
  // 200 MiB the larger run writes should not sit in memory.
  const test::TempDir dir("cbtd-index-memory-test-");
  constexpr uint64_t kSmall = 256 * 1024, kLarge = 2 * 1024 * 1024;
  auto small = RunIndexScale(dir.path() + "/small", kSmall, 65536, true);
  ASSERT_TRUE(small.ok()) << small.status();
  auto large = RunIndexScale(dir.path() + "/large", kLarge, 65536, true);
  ASSERT_TRUE(large.ok()) << large.status();
  const uint64_t grown_kib = large->rss_gc_kib - small->rss_gc_kib;
  const uint64_t entries_kib = kLarge * ChunkHash::kSize / 1024;  // 64 MiB
  RecordProperty("peak_rss_small_kib", std::to_string(small->rss_gc_kib));
  RecordProperty("peak_rss_large_kib", std::to_string(large->rss_gc_kib));
  EXPECT_LT(grown_kib, entries_kib / 8)
      << "peak RSS grew by " << grown_kib << " KiB from " << kSmall << " to "
      << kLarge << " entries (" << small->rss_gc_kib << " -> "
      << large->rss_gc_kib << " KiB): something holds a whole index again";
}

}  // namespace
}  // namespace cbtd::receiver::testing
