#include "snapshot/cow_guard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "tests/snapshot/fakes.h"

namespace cbtd::snapshot {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::NiceMock;
using ::testing::Return;

constexpr uint64_t kMiB = 1 << 20;

// VG "vg" (4 MiB extents, 100 free) with thick snapshot wal.cbtd-1 of
// volume "wal", whose COW store is 8 MiB; its fill is set per test.
class CowGuardTest : public ::testing::Test {
 protected:
  CowGuardTest() {
    lvm_.Add("wal", "linear");
    lvm_.Add("wal.cbtd-1", "linear").size_bytes = 8 * kMiB;
    snapshot_.volume = "wal";
    snapshot_.vg = "vg";
    snapshot_.name = "wal.cbtd-1";
    snapshot_.limit_bytes = 64 * kMiB;
  }

  // The dm status of the snapshot: `used` of 8 MiB (in sectors), or
  // `params` as given.
  void Status(const std::string& params) {
    ON_CALL(dm_, Status("vg-wal.cbtd--1"))
        .WillByDefault(Return(DmTable{{0, 131072, "snapshot", params}}));
  }
  void Filled(double percent) {
    const uint64_t total = 8 * kMiB / 512;
    Status(absl::StrCat(static_cast<uint64_t>(total * percent / 100), "/",
                        total, " 32"));
  }

  FakeLvm lvm_;
  NiceMock<MockDeviceMapper> dm_;
  GuardedSnapshot snapshot_;
  // No poller in the tests that call CheckNow themselves.
  CowGuardOptions manual_{60.0, std::chrono::hours(1), nullptr};
};

TEST_F(CowGuardTest, PastTheMarkTheSnapshotGrowsByHalf) {
  Filled(75);
  CowGuard guard(lvm_, dm_, {snapshot_}, manual_);
  guard.CheckNow();
  EXPECT_THAT(lvm_.calls, ElementsAre("extend vg/wal.cbtd-1 12582912"));
  ASSERT_EQ(guard.notes().size(), 1u);
  EXPECT_THAT(guard.notes()[0],
              HasSubstr("extended COW snapshot vg/wal.cbtd-1 of volume 'wal' "
                        "(75% full of 8.0 MiB) to 12.0 MiB"));
}

TEST_F(CowGuardTest, BelowTheMarkNothingIsDone) {
  Filled(40);
  CowGuard guard(lvm_, dm_, {snapshot_}, manual_);
  guard.CheckNow();
  EXPECT_THAT(lvm_.calls, IsEmpty());
  EXPECT_THAT(guard.notes(), IsEmpty());
  EXPECT_EQ(guard.Overflow("wal"), "");
}

TEST_F(CowGuardTest, GrowthStopsAtTheLimitAndSaysSoOnce) {
  Filled(90);
  snapshot_.limit_bytes = 10 * kMiB;  // less than one more extent
  CowGuard guard(lvm_, dm_, {snapshot_}, manual_);
  guard.CheckNow();
  guard.CheckNow();
  EXPECT_THAT(lvm_.calls, IsEmpty());
  ASSERT_EQ(guard.notes().size(), 1u);
  EXPECT_THAT(guard.notes()[0],
              HasSubstr("it is at its limit of 10.0 MiB (cow_max_size)"));
}

TEST_F(CowGuardTest, GrowthIsBoundedByTheLimitAndTheVgsFreeSpace) {
  Filled(90);
  snapshot_.limit_bytes = 16 * kMiB;  // half would be 12, the limit is 16
  lvm_.vg.free_extents = 1;           // but the VG has one extent: 12
  CowGuard guard(lvm_, dm_, {snapshot_}, manual_);
  guard.CheckNow();
  EXPECT_THAT(lvm_.calls, ElementsAre("extend vg/wal.cbtd-1 12582912"));
  lvm_.vg.free_extents = 0;
  lvm_.calls.clear();
  Status("23100/24576 32");  // 94% of the 12 MiB it now has
  guard.CheckNow();
  EXPECT_THAT(lvm_.calls, IsEmpty());
  EXPECT_THAT(guard.notes().back(), HasSubstr("VG vg has 0.0 MiB free"));
}

TEST_F(CowGuardTest, AFailedExtensionIsANote) {
  Filled(80);
  lvm_.extend_error = absl::ResourceExhaustedError("Insufficient free space");
  CowGuard guard(lvm_, dm_, {snapshot_}, manual_);
  guard.CheckNow();
  ASSERT_EQ(guard.notes().size(), 1u);
  EXPECT_THAT(guard.notes()[0], HasSubstr("Insufficient free space"));
}

TEST_F(CowGuardTest, OverflowNamesTheSnapshotTheVolumeAndTheSettings) {
  Status("Invalid");
  CowGuard guard(lvm_, dm_, {snapshot_}, manual_);
  guard.CheckNow();  // nothing to extend in an invalid snapshot
  EXPECT_THAT(lvm_.calls, IsEmpty());
  const std::string why = guard.Overflow("wal");
  EXPECT_THAT(why, HasSubstr("COW snapshot vg/wal.cbtd-1 of volume 'wal' "
                             "overflowed"));
  EXPECT_THAT(why, HasSubstr("Raise cow_size or cow_max_size"));
  EXPECT_THAT(why, HasSubstr("free space in VG vg"));
  EXPECT_EQ(guard.Overflow("data"), "") << "not a guarded volume";
}

TEST_F(CowGuardTest, ThePollerExtendsOnItsOwn) {
  Filled(70);
  CowGuard guard(lvm_, dm_, {snapshot_},
                 {60.0, std::chrono::milliseconds(5), nullptr});
  for (int i = 0; i < 2000 && guard.notes().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(guard.notes().empty()) << "the poller never checked";
  EXPECT_THAT(guard.notes()[0], HasSubstr("extended"));
}

}  // namespace
}  // namespace cbtd::snapshot
