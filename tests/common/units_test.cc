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

TEST(UnitsTest, ParseDecimalUint64TakesDigitsOnly) {
  uint64_t v = 7;
  EXPECT_TRUE(ParseDecimalUint64("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(ParseDecimalUint64("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
  v = 7;
  for (const char* bad :
       {"", "+1", "-1", " 1", "1 ", "1K", "0x10", "18446744073709551616"}) {
    EXPECT_FALSE(ParseDecimalUint64(bad, &v)) << bad;
    EXPECT_EQ(v, 7u) << bad;
  }
}

}  // namespace
}  // namespace cbtd::common
