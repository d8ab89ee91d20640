#include "common/byte_order.h"

#include <gtest/gtest.h>

#include <string>

namespace cbtd::common {
namespace {

TEST(ByteOrderTest, PutLeWritesLeastSignificantFirst) {
  std::string s = "x";
  PutLe(s, 0x0102030405060708, 8);
  EXPECT_EQ(s, std::string("x\x08\x07\x06\x05\x04\x03\x02\x01", 9));
  s.clear();
  PutLe(s, 0xAABBCCDD11223344, 4);  // only the low bytes
  EXPECT_EQ(s, std::string("\x44\x33\x22\x11", 4));
}

TEST(ByteOrderTest, GetLeReadsWhatPutLeWrote) {
  for (int bytes = 1; bytes <= 8; ++bytes) {
    const uint64_t v =
        bytes == 8 ? ~uint64_t{0} - 0x7e : (uint64_t{1} << (8 * bytes)) - 0x7e;
    std::string s;
    PutLe(s, v, bytes);
    ASSERT_EQ(s.size(), static_cast<size_t>(bytes));
    EXPECT_EQ(GetLe(s.data(), bytes), v) << bytes << " bytes";
  }
  const unsigned char header[4] = {0x53, 0x6e, 0x41, 0x70};  // "SnAp"
  EXPECT_EQ(GetLe(header, 4), 0x70416e53u);
}

}  // namespace
}  // namespace cbtd::common
