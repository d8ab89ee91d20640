#include "snapshot/naming.h"

#include <gtest/gtest.h>

namespace cbtd::snapshot {
namespace {

TEST(NamingTest, NameRoundTrips) {
  const auto when = std::chrono::system_clock::from_time_t(1795300805);
  const std::string name = SnapshotName("data", when);
  EXPECT_EQ(name, "data.cbtd-20261121T224005Z");
  auto parsed = ParseSnapshotName(name);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->origin, "data");
  EXPECT_EQ(parsed->timestamp, "20261121T224005Z");
}

TEST(NamingTest, ForeignNamesAreNotOurs) {
  EXPECT_FALSE(ParseSnapshotName("data").has_value());
  EXPECT_FALSE(ParseSnapshotName("data.cbtd-backup").has_value());
  EXPECT_FALSE(ParseSnapshotName(".cbtd-20261121T224005Z").has_value());
  EXPECT_FALSE(ParseSnapshotName("data.cbtd-2026112XT224005Z").has_value());
}

}  // namespace
}  // namespace cbtd::snapshot
