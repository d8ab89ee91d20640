#include "snapshot/consistency_group.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "snapshot/caching_lvm.h"
#include "tests/snapshot/fakes.h"

namespace cbtd::snapshot {
namespace {

using ::testing::_;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::InSequence;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::StrictMock;

constexpr char kPool[] = "vg-pool-tpool";

// Two thin LVs in one pool: a (253:4, thin id 1, ext4 at /mnt/a) and
// b (253:5, thin id 2, raw).
class GroupTest : public ::testing::Test {
 protected:
  GroupTest() : snapshotter_(lvm_, dm_, host_, SnapshotPolicy{}) {
    LvReport& pool = lvm_.Add("pool", "thin-pool");
    pool.data_percent = 10;
    pool.metadata_percent = 5;
    AddThin("a", 4, 1);
    AddThin("b", 5, 2);
    options_.group_name = "db";
    options_.pre_hooks = {"pre"};
    options_.frozen_hooks = {"frozen"};
    options_.post_hooks = {"post"};
    options_.when = std::chrono::system_clock::from_time_t(1795300805);
    // Snapshotter::List also lists dm snapshots: there are none.
    EXPECT_CALL(dm_, List()).Times(::testing::AnyNumber());
  }

  void AddThin(const std::string& name, int minor, uint64_t thin_id) {
    LvReport& lv = lvm_.Add(name, "thin");
    lv.pool_lv = "pool";
    lv.thin_id = thin_id;
    lv.kernel_major = 253;
    lv.kernel_minor = minor;
    lv.active = true;
    EXPECT_CALL(host_, StatBlockDevice("/dev/vg/" + name))
        .WillRepeatedly(Return(BlockDeviceId{253, uint32_t(minor), 64 << 20}));
    DmInfo info;
    info.name = "vg-" + name;
    info.uuid = "LVM-" + std::string(64, 'x');
    EXPECT_CALL(dm_, InfoByDevice(253, uint32_t(minor)))
        .WillRepeatedly(Return(std::optional<DmInfo>(info)));
  }

  // A thick LV (253:6) for the tests that mix one in.
  void AddThick() {
    LvReport& thick = lvm_.Add("thick", "linear");
    thick.kernel_major = 253;
    thick.kernel_minor = 6;
    EXPECT_CALL(host_, StatBlockDevice("/dev/vg/thick"))
        .WillRepeatedly(Return(BlockDeviceId{253, 6, 64 << 20}));
    DmInfo info{"vg-thick", "LVM-" + std::string(64, 'y'), false, {"linear"}};
    EXPECT_CALL(dm_, InfoByDevice(253, 6))
        .WillRepeatedly(Return(std::optional<DmInfo>(info)));
  }

  // A dm-era device cbtd-era-e (253:7, ext4 at /mnt/e) over LV `origin`
  // (found by its dm name, as the era table names it by device number).
  void AddEraOver(const std::string& origin, uint32_t origin_minor) {
    EXPECT_CALL(host_, StatBlockDevice("/dev/mapper/cbtd-era-e"))
        .WillRepeatedly(Return(BlockDeviceId{253, 7, 64 << 20}));
    DmInfo info{"cbtd-era-e", "CBTD-ERA-0123456789abcdef", false, {"era"}};
    EXPECT_CALL(dm_, InfoByDevice(253, 7))
        .WillRepeatedly(Return(std::optional<DmInfo>(info)));
    EXPECT_CALL(dm_, Table("cbtd-era-e"))
        .WillRepeatedly(Return(
            DmTable{{0, 131072, "era",
                     "253:8 253:" + std::to_string(origin_minor) + " 128"}}));
    EXPECT_CALL(host_, StatBlockDevice("/dev/mapper/vg-" + origin))
        .WillRepeatedly(Return(BlockDeviceId{253, origin_minor, 64 << 20}));
  }

  CountingFakeLvm lvm_;
  StrictMock<MockDeviceMapper> dm_;
  StrictMock<MockHost> host_;
  Snapshotter snapshotter_;
  GroupOptions options_;
};

TEST_F(GroupTest, HoldsEveryMemberWhileTheThinSnapshotsAreRetaken) {
  {
    InSequence seq;
    EXPECT_CALL(host_, RunHook("pre", Contains("CBTD_GROUP=db"), _))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, MountPoints(253, 4))
        .WillOnce(Return(std::vector<std::string>{"/mnt/a"}));
    EXPECT_CALL(host_, Freeze("/mnt/a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, MountPoints(253, 5))
        .WillOnce(Return(std::vector<std::string>{}));
    EXPECT_CALL(dm_, Suspend("vg-a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Suspend("vg-b")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("frozen", Contains("CBTD_PHASE=frozen"), _))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "delete 10"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "create_snap 10 1"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "delete 11"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "create_snap 11 2"))
        .WillOnce(Return(absl::OkStatus()));
    // Devices before filesystems: thawing writes to the device.
    EXPECT_CALL(dm_, Resume("vg-b")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Resume("vg-a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, Thaw("/mnt/a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("post", Contains("CBTD_RESULT=ok"), _))
        .WillOnce(Return(absl::OkStatus()));
  }
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "vg/b"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->snapshots.size(), 2u);
  EXPECT_EQ(g->snapshots[1]->name(), "b.cbtd-20261121T224005Z");
  for (auto& s : g->snapshots) s->Release();
  // Created inactive before the window, activated after it.
  EXPECT_THAT(lvm_.calls,
              ElementsAre("create vg/a.cbtd-20261121T224005Z thin inactive",
                          "create vg/b.cbtd-20261121T224005Z thin inactive",
                          "activate vg/a.cbtd-20261121T224005Z",
                          "activate vg/b.cbtd-20261121T224005Z"));
}

TEST_F(GroupTest, WithoutFreezeMembersAreOnlySuspended) {
  options_.freeze = false;
  // StrictMock host: any MountPoints/Freeze/Thaw call fails the test.
  EXPECT_CALL(host_, RunHook(_, _, _)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Suspend(_))
      .Times(2)
      .WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Message(kPool, _)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Resume(_)).Times(2).WillRepeatedly(Return(absl::OkStatus()));
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "vg/b"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->snapshots.size(), 2u);
  for (auto& s : g->snapshots) s->Release();
}

// Each lvs costs a host 0.35-0.45 s. Without a cache the group reports all
// LVs once per member (discovery), once for the names already taken and
// once after the creates (the new thin ids); through a CachingLvm, once
// before the creates and once after.
TEST_F(GroupTest, CachingLvmCutsAGroupToOneReportBeforeAndOneAfterCreates) {
  options_.freeze = false;
  EXPECT_CALL(host_, RunHook(_, _, _)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Suspend(_)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Message(kPool, _)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Resume(_)).WillRepeatedly(Return(absl::OkStatus()));
  auto reports_of_one_group = [&](Lvm& lvm) {
    Snapshotter snapshotter(lvm, dm_, host_, SnapshotPolicy{});
    const int before = lvm_.list_lvs_calls;
    absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
        snapshotter, dm_, host_, {"/dev/vg/a", "/dev/vg/b"}, options_);
    EXPECT_TRUE(g.ok()) << g.status();
    // Counted before the snapshots are removed (by g's destructor).
    return lvm_.list_lvs_calls - before;
  };
  EXPECT_EQ(reports_of_one_group(lvm_), 4);
  {
    CachingLvm caching(lvm_);
    EXPECT_EQ(reports_of_one_group(caching), 2);
  }
  for (const LvReport& lv : lvm_.lvs) {
    EXPECT_FALSE(lv.HasTag("cbtd")) << lv.name << " was left behind";
  }
}

TEST_F(GroupTest, FailedPreHookFreezesNothingAndStillRunsPostHooks) {
  EXPECT_CALL(host_, RunHook("pre", _, _))
      .WillOnce(Return(absl::DeadlineExceededError("timed out")));
  EXPECT_CALL(host_, RunHook("post", Contains("CBTD_RESULT=failed"), _))
      .WillOnce(Return(absl::OkStatus()));
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "/dev/vg/b"}, options_);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(g.status().message(), HasSubstr("pre-hook 'pre'"));
  EXPECT_TRUE(lvm_.calls.empty());
}

TEST_F(GroupTest, WatchdogReleasesAHungWindowAndNothingIsKept) {
  options_.freeze_bound = std::chrono::milliseconds(50);
  std::atomic<bool> released_during_hook{false};
  EXPECT_CALL(host_, RunHook("pre", _, _)).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(host_, MountPoints(253, 4))
      .WillOnce(Return(std::vector<std::string>{"/mnt/a"}));
  EXPECT_CALL(host_, MountPoints(253, 5))
      .WillOnce(Return(std::vector<std::string>{}));
  EXPECT_CALL(host_, Freeze("/mnt/a")).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Suspend(_))
      .Times(2)
      .WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Resume(_)).Times(2).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(host_, Thaw("/mnt/a")).WillOnce(Invoke([&](const std::string&) {
    released_during_hook = true;
    return absl::OkStatus();
  }));
  // The frozen-hook hangs far past the bound.
  EXPECT_CALL(host_, RunHook("frozen", _, _)).WillOnce(Invoke([&](auto&&...) {
    for (int i = 0; i < 200 && !released_during_hook; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return absl::OkStatus();
  }));
  EXPECT_CALL(host_, RunHook("post", Contains("CBTD_RESULT=failed"), _))
      .WillOnce(Return(absl::OkStatus()));
  // No Message: the snapshots are never re-taken.
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "/dev/vg/b"}, options_);
  EXPECT_TRUE(released_during_hook);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(g.status().message(), HasSubstr("freeze bound of 50 ms"));
  for (const LvReport& lv : lvm_.lvs) {
    EXPECT_FALSE(lv.HasTag("cbtd")) << lv.name << " was left behind";
  }
}

TEST_F(GroupTest, ThickMemberIsSnapshottedInsideTheWindow) {
  AddThick();
  size_t lvm_calls_in_window = 0;
  {
    InSequence seq;
    EXPECT_CALL(host_, RunHook("pre", _, _)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, MountPoints(253, 4))
        .WillOnce(Return(std::vector<std::string>{}));
    EXPECT_CALL(host_, MountPoints(253, 6))
        .WillOnce(Return(std::vector<std::string>{"/mnt/t"}));
    EXPECT_CALL(host_, Freeze("/mnt/t")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Suspend("vg-a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Suspend("vg-thick")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("frozen", _, _))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "delete 10"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "create_snap 10 1"))
        .WillOnce(Return(absl::OkStatus()));
    // lvcreate of the thick snapshot runs here, with both members held.
    EXPECT_CALL(dm_, Resume("vg-thick")).WillOnce(Invoke([&](auto&&) {
      lvm_calls_in_window = lvm_.calls.size();
      return absl::OkStatus();
    }));
    EXPECT_CALL(dm_, Resume("vg-a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, Thaw("/mnt/t")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("post", Contains("CBTD_RESULT=ok"), _))
        .WillOnce(Return(absl::OkStatus()));
  }
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "/dev/vg/thick"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  for (auto& s : g->snapshots) s->Release();
  EXPECT_THAT(lvm_.calls,
              ElementsAre("create vg/a.cbtd-20261121T224005Z thin inactive",
                          "create vg/thick.cbtd-20261121T224005Z cow active",
                          "activate vg/a.cbtd-20261121T224005Z"));
  EXPECT_EQ(lvm_calls_in_window, 2u) << "the thick lvcreate ran outside";
}

TEST_F(GroupTest, ThickMemberFailingInTheWindowLeavesNothing) {
  AddThick();
  lvm_.create_error = absl::ResourceExhaustedError("insufficient free extents");
  lvm_.create_error_origin = "thick";  // the thin one succeeds
  options_.frozen_hooks.clear();
  EXPECT_CALL(host_, RunHook(_, _, _)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(host_, MountPoints(_, _))
      .WillRepeatedly(Return(std::vector<std::string>{}));
  EXPECT_CALL(dm_, Suspend(_))
      .Times(2)
      .WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Message(kPool, _)).WillRepeatedly(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Resume(_)).Times(2).WillRepeatedly(Return(absl::OkStatus()));
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "/dev/vg/thick"}, options_);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(g.status().message(), HasSubstr("/dev/vg/thick"));
  for (const LvReport& lv : lvm_.lvs) {
    EXPECT_FALSE(lv.HasTag("cbtd")) << lv.name << " was left behind";
  }
}

TEST_F(GroupTest, SequentialGroupSnapshotsMembersOneByOne) {
  AddThick();
  options_.sequential = true;
  options_.frozen_hooks.clear();
  EXPECT_CALL(host_, RunHook(_, _, _))
      .Times(2)
      .WillRepeatedly(Return(absl::OkStatus()));
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "/dev/vg/thick"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_THAT(lvm_.calls,
              ElementsAre("create vg/a.cbtd-20261121T224005Z thin active",
                          "create vg/thick.cbtd-20261121T224005Z cow active"));
}

TEST_F(GroupTest, FrozenHooksWithoutAWindowAreRefused) {
  options_.sequential = true;
  absl::StatusOr<GroupSnapshot> g =
      TakeGroupSnapshot(snapshotter_, dm_, host_, {"/dev/vg/a"}, options_);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("use a pre-hook"));
  EXPECT_TRUE(lvm_.calls.empty());
}

// An era device's origin is snapshotted in the window, the filesystem on
// the era device frozen; the era device itself is not suspended (holding
// the LV below holds its writes; a suspended dm-era blocks status queries).
// StrictMock: a Suspend of cbtd-era-e would fail the test.
TEST_F(GroupTest, EraMemberIsSnapshottedBelowWithTheEraDeviceHeld) {
  AddEraOver("a", 4);
  {
    InSequence seq;
    EXPECT_CALL(host_, RunHook("pre", _, _)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, MountPoints(253, 4))
        .WillOnce(Return(std::vector<std::string>{}));
    EXPECT_CALL(host_, MountPoints(253, 7))
        .WillOnce(Return(std::vector<std::string>{"/mnt/e"}));
    EXPECT_CALL(host_, Freeze("/mnt/e")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, MountPoints(253, 5))
        .WillOnce(Return(std::vector<std::string>{}));
    EXPECT_CALL(dm_, Suspend("vg-a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Suspend("vg-b")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("frozen", _, _))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "delete 10"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "create_snap 10 1"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "delete 11"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Message(kPool, "create_snap 11 2"))
        .WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Resume("vg-b")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Resume("vg-a")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, Thaw("/mnt/e")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("post", Contains("CBTD_RESULT=ok"), _))
        .WillOnce(Return(absl::OkStatus()));
  }
  absl::StatusOr<GroupSnapshot> g =
      TakeGroupSnapshot(snapshotter_, dm_, host_,
                        {"/dev/mapper/cbtd-era-e", "/dev/vg/b"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  for (auto& s : g->snapshots) s->Release();
  EXPECT_EQ(g->members[0].lv, "a") << "the LV below the era device";
  ASSERT_TRUE(g->era_above[0].has_value());
  EXPECT_EQ(g->era_above[0]->dm_name, "cbtd-era-e");
  EXPECT_FALSE(g->era_above[1].has_value());
  EXPECT_EQ(g->snapshots[0]->name(), "a.cbtd-20261121T224005Z");
}

// Alone, a thick LV below an era device still gets a window: lvcreate's
// own suspend would not freeze the filesystem on the era device.
TEST_F(GroupTest, ThickLvBelowAnEraDeviceIsSnapshottedInAWindow) {
  AddThick();
  AddEraOver("thick", 6);
  options_.frozen_hooks.clear();
  size_t lvm_calls_in_window = 0;
  {
    InSequence seq;
    EXPECT_CALL(host_, RunHook("pre", _, _)).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, MountPoints(253, 6))
        .WillOnce(Return(std::vector<std::string>{}));
    EXPECT_CALL(host_, MountPoints(253, 7))
        .WillOnce(Return(std::vector<std::string>{"/mnt/e"}));
    EXPECT_CALL(host_, Freeze("/mnt/e")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Suspend("vg-thick")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(dm_, Resume("vg-thick")).WillOnce(Invoke([&](auto&&) {
      lvm_calls_in_window = lvm_.calls.size();
      return absl::OkStatus();
    }));
    EXPECT_CALL(host_, Thaw("/mnt/e")).WillOnce(Return(absl::OkStatus()));
    EXPECT_CALL(host_, RunHook("post", _, _))
        .WillOnce(Return(absl::OkStatus()));
  }
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/mapper/cbtd-era-e"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  for (auto& s : g->snapshots) s->Release();
  EXPECT_THAT(lvm_.calls,
              ElementsAre("create vg/thick.cbtd-20261121T224005Z cow active"));
  EXPECT_EQ(lvm_calls_in_window, 1u) << "the lvcreate ran outside the window";
}

// The COW size configured for the era device is the one its thick LV's
// snapshot gets (not the default share of the origin).
TEST_F(GroupTest, ThickLvBelowAnEraDeviceGetsTheEraDevicesCowSize) {
  AddThick();
  AddEraOver("thick", 6);
  SnapshotPolicy policy;
  policy.cow_size_bytes_for["/dev/mapper/cbtd-era-e"] = 8 << 20;
  Snapshotter snapshotter(lvm_, dm_, host_, policy);
  options_ = GroupOptions{};
  options_.freeze = false;
  options_.when = std::chrono::system_clock::from_time_t(1795300805);
  EXPECT_CALL(dm_, Suspend("vg-thick")).WillOnce(Return(absl::OkStatus()));
  EXPECT_CALL(dm_, Resume("vg-thick")).WillOnce(Return(absl::OkStatus()));
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter, dm_, host_, {"/dev/mapper/cbtd-era-e"}, options_);
  ASSERT_TRUE(g.ok()) << g.status();
  for (auto& s : g->snapshots) s->Release();
  ASSERT_EQ(lvm_.requests.size(), 1u);
  EXPECT_EQ(lvm_.requests[0].origin, "thick");
  EXPECT_EQ(lvm_.requests[0].cow_size_bytes, uint64_t{8} << 20)
      << "the default would be 20% of 64 MiB";
}

TEST_F(GroupTest, EraDeviceAndTheLvBelowItAreOneVolume) {
  AddEraOver("a", 4);
  absl::StatusOr<GroupSnapshot> g =
      TakeGroupSnapshot(snapshotter_, dm_, host_,
                        {"/dev/mapper/cbtd-era-e", "/dev/vg/a"}, options_);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("given twice"));
  EXPECT_TRUE(lvm_.calls.empty());
}

TEST_F(GroupTest, SameVolumeTwiceIsRefused) {
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      snapshotter_, dm_, host_, {"/dev/vg/a", "vg/a"}, options_);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cbtd::snapshot
