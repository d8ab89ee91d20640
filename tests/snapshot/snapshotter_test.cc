#include "snapshot/snapshotter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/snapshot/fakes.h"

namespace cbtd::snapshot {
namespace {

using ::testing::HasSubstr;
using ::testing::NiceMock;

VolumeInfo Thin(double data_percent, double metadata_percent) {
  VolumeInfo v;
  v.path = "/dev/vg/thin";
  v.kind = VolumeKind::kThinLv;
  v.vg = "vg";
  v.lv = "thin";
  v.pool_lv = "pool";
  v.thin_id = 1;
  v.size_bytes = 64 << 20;
  v.pool_data_percent = data_percent;
  v.pool_metadata_percent = metadata_percent;
  return v;
}

VolumeInfo Thick(const std::string& lv, uint64_t size_bytes) {
  VolumeInfo v;
  v.path = "/dev/vg/" + lv;
  v.kind = VolumeKind::kThickLv;
  v.vg = "vg";
  v.lv = lv;
  v.size_bytes = size_bytes;
  return v;
}

class SnapshotterTest : public ::testing::Test {
 protected:
  Snapshotter Make(SnapshotPolicy policy = {}) {
    return Snapshotter(lvm_, dm_, host_, policy);
  }
  FakeLvm lvm_;
  NiceMock<MockDeviceMapper> dm_;
  NiceMock<MockHost> host_;
};

TEST_F(SnapshotterTest, ThinPoolOverTheLimitIsRefusedWithHowFull) {
  Snapshotter s = Make();
  absl::Status st = s.CheckCanSnapshot({Thin(85.5, 10)});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("vg/pool data is 85.5% full"));
  EXPECT_THAT(st.message(), HasSubstr("80% limit"));
  EXPECT_THAT(st.message(), HasSubstr("lvextend"));

  st = s.CheckCanSnapshot({Thin(10, 92)});
  EXPECT_THAT(st.message(), HasSubstr("metadata is 92.0% full"));
  EXPECT_TRUE(s.CheckCanSnapshot({Thin(80, 80)}).ok());
  SnapshotPolicy strict;
  strict.pool_fill_limit_percent = 50;
  EXPECT_FALSE(Make(strict).CheckCanSnapshot({Thin(60, 1)}).ok());
  EXPECT_TRUE(lvm_.calls.empty());
}

TEST_F(SnapshotterTest, CowSnapshotsMustFitTheVgTogether) {
  // 100 free extents of 4 MiB. Each 20% COW of 800 MiB is 160 MiB = 40
  // extents (+1 for rounding): two fit, three do not.
  Snapshotter s = Make();
  EXPECT_TRUE(
      s.CheckCanSnapshot({Thick("a", 800 << 20), Thick("b", 800 << 20)}).ok());
  absl::Status st = s.CheckCanSnapshot(
      {Thick("a", 800 << 20), Thick("b", 800 << 20), Thick("c", 800 << 20)});
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(st.message(), HasSubstr("VG vg has 400.0 MiB free"));
  EXPECT_THAT(st.message(), HasSubstr("vgextend"));

  SnapshotPolicy one_gib;
  one_gib.cow_size_bytes = uint64_t{1} << 30;
  Snapshotter fixed = Make(one_gib);
  // 20% of 32 MiB is 6710886.4 bytes; lvcreate wants whole sectors.
  EXPECT_EQ(s.CowSizeBytes(Thick("a", 32 << 20)), 6711296u);
  EXPECT_EQ(fixed.CowSizeBytes(Thick("a", 8 << 20)), uint64_t{1} << 30);
  EXPECT_FALSE(fixed.CheckCanSnapshot({Thick("a", 8 << 20)}).ok());
}

// A thick snapshot of cbtd's: the base of `origin`'s tracking.
LvReport BaseSnapshot(const std::string& origin, uint64_t cow_bytes,
                      double percent, const std::string& name = "") {
  LvReport lv;
  lv.vg = "vg";
  lv.name = name.empty() ? origin + ".cbtd-20261201T020000Z" : name;
  lv.origin = origin;
  lv.segtype = "linear";
  lv.size_bytes = cow_bytes;
  lv.data_percent = percent;
  return lv;
}

TEST_F(SnapshotterTest, ANewCowSnapshotIsSizedFromWhatTheBaseSnapshotHolds) {
  // db's base (a 16 MiB COW, 75 % full) collected 12 MiB of writes since
  // the last run: the next snapshot gets 24 MiB instead of 20 % of 64.
  lvm_.lvs = {BaseSnapshot("db", 16 << 20, 75.0),
              // Someone else's snapshot of db, fuller: not cbtd's, ignored.
              BaseSnapshot("db", 64 << 20, 100.0, "db-manual"),
              BaseSnapshot("quiet", 16 << 20, 1.0)};
  Snapshotter s = Make();
  ASSERT_TRUE(
      s.CheckCanSnapshot({Thick("db", 64 << 20), Thick("quiet", 64 << 20)})
          .ok());
  EXPECT_EQ(s.CowSizeBytes(Thick("db", 64 << 20)), 24u << 20);
  // quiet's writes fit what the policy gives: unchanged.
  EXPECT_EQ(s.CowSizeBytes(Thick("quiet", 64 << 20)),
            Make().CowSizeBytes(Thick("quiet", 64 << 20)));
  ASSERT_EQ(s.notes().size(), 1u);
  EXPECT_THAT(s.notes()[0], HasSubstr("/dev/vg/db at 24.0 MiB"));
  EXPECT_THAT(s.notes()[0], HasSubstr("holds 12.0 MiB of writes"));
}

TEST_F(SnapshotterTest, ALearnedCowSizeStaysWithinTheLimitAndTheVg) {
  lvm_.lvs = {BaseSnapshot("db", 64 << 20, 100.0)};
  // Bounded by cow_max_size: 2 x 64 MiB wanted, 40 MiB allowed.
  SnapshotPolicy limited;
  limited.cow_limit_bytes_for["/dev/vg/db"] = 40 << 20;
  Snapshotter a = Make(limited);
  ASSERT_TRUE(a.CheckCanSnapshot({Thick("db", 128 << 20)}).ok());
  EXPECT_EQ(a.CowSizeBytes(Thick("db", 128 << 20)), 40u << 20);
  // cow_max_size equal to cow_size: nothing to learn.
  SnapshotPolicy tight;
  tight.cow_size_bytes_for["/dev/vg/db"] = 8 << 20;
  tight.cow_limit_bytes_for["/dev/vg/db"] = 8 << 20;
  Snapshotter b = Make(tight);
  ASSERT_TRUE(b.CheckCanSnapshot({Thick("db", 256 << 20)}).ok());
  EXPECT_EQ(b.CowSizeBytes(Thick("db", 256 << 20)), 8u << 20);
  EXPECT_TRUE(b.notes().empty());
  // A VG with 10 extents of 4 MiB: the policy's 20 % of 32 MiB (7 MiB,
  // plus an extent of slack) comes first; learning gets what is left, and
  // the point does not fail for it.
  lvm_.vg.free_extents = 10;
  Snapshotter c = Make();
  ASSERT_TRUE(c.CheckCanSnapshot({Thick("db", 32 << 20)}).ok());
  EXPECT_EQ(c.CowSizeBytes(Thick("db", 32 << 20)), 32u << 20);  // the limit
  lvm_.vg.free_extents = 3;
  Snapshotter d = Make();
  ASSERT_TRUE(d.CheckCanSnapshot({Thick("db", 32 << 20)}).ok());
  // 12 MiB free, 6.4 MiB + 4 MiB taken by the policy's size: 8 MiB.
  EXPECT_EQ(d.CowSizeBytes(Thick("db", 32 << 20)), 8u << 20);
}

TEST_F(SnapshotterTest, PerVolumeCowSizeOverridesThePolicy) {
  SnapshotPolicy policy;
  policy.cow_percent = 10;
  policy.cow_size_bytes_for["/dev/vg/fixed"] = 4 << 20;
  policy.cow_percent_for["/dev/vg/half"] = 50;
  Snapshotter s = Make(policy);
  EXPECT_EQ(s.CowSizeBytes(Thick("fixed", 64 << 20)), 4u << 20);
  EXPECT_EQ(s.CowSizeBytes(Thick("half", 64 << 20)), 32u << 20);
  EXPECT_EQ(s.CowSizeBytes(Thick("other", 64 << 20)), 6711296u);
}

TEST_F(SnapshotterTest, UnsnapshottableVolumeIsRefusedWithItsReason) {
  VolumeInfo v;
  v.path = "/dev/vdb";
  v.kind = VolumeKind::kBlockDevice;
  v.not_snapshottable_reason = "a plain block device";
  absl::Status st = Make().CheckCanSnapshot({Thin(1, 1), v});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("/dev/vdb: a plain block device"));
}

TEST_F(SnapshotterTest, ScopedSnapshotRemovesUnlessReleased) {
  Snapshotter s = Make();
  {
    auto snap = s.Create(Thick("data", 64 << 20), "data.cbtd-20261121T224005Z");
    ASSERT_TRUE(snap.ok()) << snap.status();
    EXPECT_EQ(lvm_.lvs.size(), 1u);
  }
  EXPECT_TRUE(lvm_.lvs.empty());
  {
    auto snap = s.Create(Thin(1, 1), "thin.cbtd-20261121T224005Z");
    ASSERT_TRUE(snap.ok());
    (*snap)->Release();
  }
  ASSERT_EQ(lvm_.lvs.size(), 1u);
  EXPECT_THAT(lvm_.calls,
              ::testing::ElementsAre(
                  "create vg/data.cbtd-20261121T224005Z cow active",
                  "remove vg/data.cbtd-20261121T224005Z",
                  "create vg/thin.cbtd-20261121T224005Z thin active"));
}

TEST_F(SnapshotterTest, RemoveAndCleanupTouchOnlyTaggedSnapshotsWithOurNames) {
  lvm_.Add("data", "linear");
  lvm_.Add("data.cbtd-20261121T224005Z", "linear").origin = "data";  // no tag
  lvm_.Add("other", "linear").tags = {"cbtd"};  // tag, foreign name
  LvReport& old = lvm_.Add("data.cbtd-20261120T010000Z", "linear");
  old.tags = {"cbtd"};
  old.origin = "data";
  LvReport& keep = lvm_.Add("data.cbtd-20261121T010000Z", "thin");
  keep.tags = {"x", "cbtd"};
  Snapshotter s = Make();

  absl::StatusOr<std::vector<SnapshotInfo>> listed = s.List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, "data.cbtd-20261120T010000Z");  // oldest first
  EXPECT_EQ((*listed)[0].cow_dm_path,
            "/dev/mapper/vg-data.cbtd--20261120T010000Z-cow");

  absl::Status st = s.Remove("vg", "data.cbtd-20261121T224005Z");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("not a cbtd snapshot"));
  EXPECT_EQ(s.Remove("vg", "other").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.Remove("vg", "gone").code(), absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<SnapshotInfo>> removed =
      s.RemoveOrphans({"vg/data.cbtd-20261121T010000Z"});
  ASSERT_TRUE(removed.ok());
  ASSERT_EQ(removed->size(), 1u);
  EXPECT_EQ((*removed)[0].name, "data.cbtd-20261120T010000Z");
  EXPECT_THAT(lvm_.calls,
              ::testing::ElementsAre("remove vg/data.cbtd-20261120T010000Z"));
  EXPECT_EQ(lvm_.lvs.size(), 4u);
}

}  // namespace
}  // namespace cbtd::snapshot
