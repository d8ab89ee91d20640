#include "common/units.h"

#include <gtest/gtest.h>

namespace cbtd::common {
namespace {

TEST(UnitsTest, ParseBytes) {
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("64K"), 65536u);
  EXPECT_EQ(*ParseBytes("4MiB"), 4u << 20);
  EXPECT_EQ(*ParseBytes("1g"), 1u << 30);
  EXPECT_EQ(*ParseBytes("2T"), 2ULL << 40);
  EXPECT_FALSE(ParseBytes("").ok());
  EXPECT_FALSE(ParseBytes("K").ok());
  EXPECT_FALSE(ParseBytes("12Q").ok());
  EXPECT_FALSE(ParseBytes("99999999999T").ok());
}

TEST(UnitsTest, ParseDurationSpec) {
  EXPECT_EQ(*ParseDurationSpec("10s"), absl::Seconds(10));
  EXPECT_EQ(*ParseDurationSpec("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationSpec("2d"), absl::Hours(48));
  EXPECT_FALSE(ParseDurationSpec("10").ok());
  EXPECT_FALSE(ParseDurationSpec("0s").ok());
  EXPECT_FALSE(ParseDurationSpec("1w").ok());
  EXPECT_FALSE(ParseDurationSpec("").ok());
}

}  // namespace
}  // namespace cbtd::common
