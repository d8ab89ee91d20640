// dm-snapshot backend (dm_snapshotter.h) through Snapshotter and
// TakeGroupSnapshot, against FakeDeviceMapper: the create sequence, its
// rollback at every step, removal, ownership, refusals, groups.
#include "snapshot/dm_snapshotter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "snapshot/consistency_group.h"
#include "snapshot/naming.h"
#include "tests/snapshot/fakes.h"

namespace cbtd::snapshot {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::IsEmpty;
using ::testing::NiceMock;
using ::testing::Return;

constexpr char kTs[] = "20261121T224005Z";
constexpr char kSnap[] = "cbtd-data-20261121T224005Z";
constexpr char kCow[] = "cbtd-data-cow-20261121T224005Z";
constexpr char kReal[] = "cbtd-data-real";
constexpr uint64_t kSectors = 131072;  // 64 MiB

DmTable Linear(const std::string& dev, uint64_t offset) {
  return {DmTarget{0, kSectors, "linear", absl::StrCat(dev, " ", offset)}};
}

// dm devices "data" (253:1) and "logs" (253:2), linear over /dev/vda, and
// COW stores /dev/vdb1 (8:17) and /dev/vdb2 (8:18) of 32 MiB.
class DmSnapshotTest : public ::testing::Test {
 protected:
  DmSnapshotTest() {
    AddOrigin("data", 1, 2048);
    AddOrigin("logs", 2, 2048 + kSectors);
    AddStore("/dev/vdb1", 17);
    AddStore("/dev/vdb2", 18);
    ON_CALL(host_, ZeroStart(_, _))
        .WillByDefault(Invoke([this](const std::string& path, uint64_t bytes) {
          dm_.calls.push_back(absl::StrCat("zero ", path, " ", bytes));
          return absl::OkStatus();
        }));
    ON_CALL(host_, MountPoints(_, _))
        .WillByDefault(Return(std::vector<std::string>{}));
    policy_.dm_cow_device_for["/dev/mapper/data"] = "/dev/vdb1";
    policy_.dm_cow_device_for["/dev/mapper/logs"] = "/dev/vdb2";
  }

  void AddOrigin(const std::string& name, uint32_t minor, uint64_t offset) {
    dm_.Add(name, "", minor, Linear("254:0", offset));
    ON_CALL(host_, StatBlockDevice("/dev/mapper/" + name))
        .WillByDefault(Return(BlockDeviceId{253, minor, kSectors * 512}));
  }
  void AddStore(const std::string& path, uint32_t minor) {
    ON_CALL(host_, StatBlockDevice(path))
        .WillByDefault(Return(BlockDeviceId{8, minor, 32 << 20}));
  }

  Snapshotter Make() { return Snapshotter(lvm_, dm_, host_, policy_); }

  VolumeInfo Volume(const std::string& name) {
    absl::StatusOr<VolumeInfo> v =
        DiscoverVolume("/dev/mapper/" + name, lvm_, dm_, host_);
    EXPECT_TRUE(v.ok()) << v.status();
    return *v;
  }

  // Only the origins are left, with their original tables, resumed.
  void ExpectPristine() {
    std::vector<std::string> names;
    for (const auto& [name, d] : dm_.devices) names.push_back(name);
    EXPECT_THAT(names, ElementsAre("data", "logs"));
    EXPECT_EQ(dm_.devices["data"].live, Linear("254:0", 2048));
    EXPECT_EQ(dm_.devices["logs"].live, Linear("254:0", 2048 + kSectors));
    for (const auto& [name, d] : dm_.devices) {
      EXPECT_FALSE(d.suspended) << name;
      EXPECT_FALSE(d.inactive.has_value()) << name;
    }
  }

  FakeLvm lvm_;
  FakeDeviceMapper dm_;
  NiceMock<MockHost> host_;
  SnapshotPolicy policy_;
};

TEST_F(DmSnapshotTest, NamesCarryTheOwnershipMarkAndParseBack) {
  EXPECT_EQ(DmHelperName(DmRole::kSnapshot, "data", kTs).uuid,
            "CBTD-snap-20261121T224005Z-data");
  EXPECT_EQ(DmHelperName(DmRole::kCow, "data", kTs).name, kCow);
  EXPECT_EQ(DmHelperName(DmRole::kReal, "data", kTs).uuid, "CBTD-real-data");
  std::optional<ParsedDmDevice> p = ParseDmDevice(
      "cbtd-a-cow-1-20261121T224005Z", "CBTD-snap-20261121T224005Z-a-cow-1");
  ASSERT_TRUE(p.has_value());  // origin "a-cow-1": the uuid decides
  EXPECT_EQ(p->role, DmRole::kSnapshot);
  EXPECT_EQ(p->origin, "a-cow-1");
  EXPECT_FALSE(ParseDmDevice(kSnap, "").has_value());
  EXPECT_FALSE(
      ParseDmDevice(kSnap, "CBTD-snap-20261121T224005Z-x").has_value());
  EXPECT_FALSE(ParseDmDevice("other", "CBTD-real-data").has_value());
  EXPECT_EQ(ParseDmSnapshotName(kSnap)->origin, "data");
  EXPECT_FALSE(ParseDmSnapshotName("cbtd-data-real").has_value());
}

TEST_F(DmSnapshotTest, PlainDmDevicesAreSnapshottableOthersRefused) {
  dm_.Add("crypt", "CRYPT-x", 7, {DmTarget{0, 8, "crypt", "aes 0 8:0 0"}});
  ON_CALL(host_, StatBlockDevice("/dev/mapper/crypt"))
      .WillByDefault(Return(BlockDeviceId{253, 7, 4096}));
  dm_.Add("cbtd-x-real", "CBTD-real-x", 8, Linear("254:0", 0));
  ON_CALL(host_, StatBlockDevice("/dev/mapper/cbtd-x-real"))
      .WillByDefault(Return(BlockDeviceId{253, 8, 4096}));
  VolumeInfo data = Volume("data");
  EXPECT_EQ(data.kind, VolumeKind::kOtherDm);
  EXPECT_EQ(data.not_snapshottable_reason, "");
  EXPECT_THAT(Volume("crypt").not_snapshottable_reason,
              HasSubstr("only when their table is linear or striped"));
  EXPECT_THAT(Volume("cbtd-x-real").not_snapshottable_reason,
              HasSubstr("cbtd's own"));
}

TEST_F(DmSnapshotTest, CreateSequenceHoldsTheOriginAroundTheSwitch) {
  Snapshotter s = Make();
  VolumeInfo v = Volume("data");
  ASSERT_TRUE(s.CheckCanSnapshot({v}).ok());
  absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap = s.Create(v, kSnap);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_THAT(dm_.calls,
              ElementsAre("zero /dev/vdb1 4096", "create cbtd-data-real",
                          absl::StrCat("create ", kCow), "suspend data",
                          absl::StrCat("create ", kSnap),
                          "load data snapshot-origin", "resume data"));
  const std::string real = dm_.DevOf(kReal);
  EXPECT_EQ(dm_.devices[kReal].live, Linear("254:0", 2048));
  EXPECT_EQ(dm_.devices[kReal].uuid, "CBTD-real-data");
  EXPECT_EQ(dm_.devices[kCow].live,
            (DmTable{DmTarget{0, 65536, "linear", "8:17 0"}}));
  EXPECT_EQ(
      dm_.devices[kSnap].live,
      (DmTable{DmTarget{0, kSectors, "snapshot",
                        absl::StrCat(real, " ", dm_.DevOf(kCow), " P 8")}}));
  EXPECT_TRUE(dm_.devices[kSnap].read_only);
  EXPECT_EQ(dm_.devices["data"].live,
            (DmTable{DmTarget{0, kSectors, "snapshot-origin", real}}));
  EXPECT_FALSE(dm_.devices["data"].suspended);

  absl::StatusOr<std::vector<SnapshotInfo>> list = s.List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  const SnapshotInfo& info = (*list)[0];
  EXPECT_EQ(info.kind, VolumeKind::kOtherDm);
  EXPECT_EQ(info.vg, "");
  EXPECT_EQ(info.FullName(), "dm/cbtd-data-20261121T224005Z");
  EXPECT_EQ(info.origin, "data");
  EXPECT_EQ(info.timestamp, kTs);
  EXPECT_EQ(info.device_path, "/dev/mapper/cbtd-data-20261121T224005Z");
  EXPECT_EQ(info.cow_dm_path, "/dev/mapper/cbtd-data-cow-20261121T224005Z");
  EXPECT_EQ(info.size_bytes, kSectors * 512);
  EXPECT_NEAR(*info.cow_fill_percent, 100.0 * 16 / 131072, 1e-9);
  EXPECT_FALSE(info.invalid);
  EXPECT_TRUE(info.active);

  dm_.snapshot_status = "Invalid";
  absl::StatusOr<SnapshotInfo> got = s.Get("dm", kSnap);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->invalid);
  (*snap)->Release();
}

TEST_F(DmSnapshotTest, EveryFailingCreateStepIsRolledBack) {
  const std::string steps[] = {
      "create cbtd-data-real",
      absl::StrCat("create ", kCow),
      "suspend data",
      absl::StrCat("create ", kSnap),
      "load data snapshot-origin",
      "resume data",
  };
  for (const std::string& step : steps) {
    SCOPED_TRACE(step);
    dm_.calls.clear();
    dm_.fail_once = {step};
    Snapshotter s = Make();
    absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
        s.Create(Volume("data"), kSnap);
    EXPECT_FALSE(snap.ok());
    EXPECT_THAT(snap.status().message(), HasSubstr("injected failure"));
    EXPECT_THAT(snap.status().message(), HasSubstr("/dev/mapper/data"));
    ExpectPristine();
  }
  EXPECT_TRUE(dm_.fail_once.empty());
}

TEST_F(DmSnapshotTest, ZeroStartFailureChangesNothing) {
  EXPECT_CALL(host_, ZeroStart("/dev/vdb1", 4096))
      .WillOnce(Return(absl::FailedPreconditionError("/dev/vdb1 is in use")));
  Snapshotter s = Make();
  absl::StatusOr<std::unique_ptr<ScopedSnapshot>> snap =
      s.Create(Volume("data"), kSnap);
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(snap.status().message(), HasSubstr("in use"));
  EXPECT_THAT(dm_.calls, IsEmpty());
}

TEST_F(DmSnapshotTest, RemovingTheLastSnapshotRestoresTheOriginTable) {
  Snapshotter s = Make();
  VolumeInfo v = Volume("data");
  auto first = s.Create(v, kSnap);
  ASSERT_TRUE(first.ok()) << first.status();
  policy_.dm_cow_device_for["/dev/mapper/data"] = "/dev/vdb2";
  Snapshotter s2 = Make();
  const std::string second_name = "cbtd-data-20261121T224006Z";
  auto second = s2.Create(Volume("data"), second_name);  // now snapshot-origin
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(dm_.devices.size(), 7u);  // data logs real 2x(cow snap)

  dm_.calls.clear();
  ASSERT_TRUE((*first)->Remove().ok());
  EXPECT_THAT(dm_.calls, ElementsAre(absl::StrCat("remove ", kSnap),
                                     absl::StrCat("remove ", kCow)));
  EXPECT_EQ(dm_.devices["data"].live[0].type, "snapshot-origin");

  dm_.calls.clear();
  ASSERT_TRUE((*second)->Remove().ok());
  EXPECT_THAT(dm_.calls, ElementsAre(absl::StrCat("remove ", second_name),
                                     "remove cbtd-data-cow-20261121T224006Z",
                                     "load data linear", "suspend data",
                                     "resume data", "remove cbtd-data-real"));
  ExpectPristine();
}

TEST_F(DmSnapshotTest, CleanupTouchesOnlyDevicesWithTheCbtdMark) {
  Snapshotter s = Make();
  auto snap = s.Create(Volume("data"), kSnap);
  ASSERT_TRUE(snap.ok()) << snap.status();
  (*snap)->Release();
  // Look-alikes: our names without the mark, a foreign mark on our name.
  dm_.Add("cbtd-logs-20261121T224005Z", "", 50, Linear("254:0", 0));
  dm_.Add("cbtd-logs-real", "LVM-xyz", 51, Linear("254:0", 0));
  dm_.Add("cbtd-logs-cow-20261121T224005Z", "CBTD-cow-x", 52,
          Linear("254:0", 0));

  absl::Status st = s.Remove("", "cbtd-logs-20261121T224005Z");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("not a cbtd snapshot"));
  EXPECT_EQ(s.Remove("dm", "cbtd-data-20261121T000000Z").code(),
            absl::StatusCode::kNotFound);

  absl::StatusOr<std::vector<SnapshotInfo>> kept =
      s.RemoveOrphans({"dm/cbtd-data-20261121T224005Z"});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(*kept, IsEmpty());
  EXPECT_EQ(dm_.devices.size(), 8u);

  dm_.calls.clear();
  absl::StatusOr<std::vector<SnapshotInfo>> removed = s.RemoveOrphans({});
  ASSERT_TRUE(removed.ok()) << removed.status();
  ASSERT_EQ(removed->size(), 1u);
  EXPECT_EQ((*removed)[0].FullName(), "dm/cbtd-data-20261121T224005Z");
  for (const std::string& call : dm_.calls) {
    EXPECT_THAT(call, ::testing::Not(HasSubstr("logs"))) << call;
  }
  EXPECT_TRUE(dm_.devices.count("cbtd-logs-20261121T224005Z"));
  EXPECT_TRUE(dm_.devices.count("cbtd-logs-real"));
  EXPECT_TRUE(dm_.devices.count("cbtd-logs-cow-20261121T224005Z"));
  EXPECT_EQ(dm_.devices["data"].live, Linear("254:0", 2048));
  EXPECT_FALSE(dm_.devices.count(kReal));
}

TEST_F(DmSnapshotTest, InterruptedCreateIsListedAndCleanedUp) {
  // A crash after -real and -cow were made, and one after only -real.
  dm_.Add(kReal, "CBTD-real-data", 60, Linear("254:0", 2048));
  dm_.Add(kCow, "CBTD-cow-20261121T224005Z-data", 61, Linear("8:17", 0));
  dm_.Add("cbtd-logs-real", "CBTD-real-logs", 62, Linear("254:0", 0));
  dm_.devices["logs"].live = {
      DmTarget{0, kSectors, "snapshot-origin", "253:62"}};
  Snapshotter s = Make();
  absl::StatusOr<std::vector<SnapshotInfo>> list = s.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE((*list)[0].invalid);
  EXPECT_FALSE((*list)[0].active);
  ASSERT_TRUE(s.RemoveOrphans({}).ok());
  EXPECT_EQ(dm_.devices["logs"].live, Linear("254:0", 0));
  std::vector<std::string> names;
  for (const auto& [name, d] : dm_.devices) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("data", "logs"));
}

TEST_F(DmSnapshotTest, MissingOrSmallCowStoreIsRefusedNamingTheVolume) {
  policy_.dm_cow_device_for.erase("/dev/mapper/data");
  Snapshotter s = Make();
  absl::Status st = s.CheckCanSnapshot({Volume("data")});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("/dev/mapper/data"));
  EXPECT_THAT(st.message(), HasSubstr("--cow-device"));

  policy_.dm_cow_device_for["/dev/mapper/data"] = "/dev/vdb1";
  policy_.cow_percent = 60;  // 38.4 MiB > 32 MiB
  st = Make().CheckCanSnapshot({Volume("data")});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("COW store /dev/vdb1 is 32.0 MiB"));

  policy_.cow_percent = 20;
  policy_.dm_cow_device_for["/dev/mapper/logs"] = "/dev/vdb1";
  st = Make().CheckCanSnapshot({Volume("data"), Volume("logs")});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("a COW store of its own"));
  EXPECT_THAT(dm_.calls, IsEmpty());
}

TEST_F(DmSnapshotTest, GroupTakesEveryDmMemberWhileAllAreHeld) {
  Snapshotter s = Make();
  GroupOptions options;
  options.group_name = "g";
  options.when = std::chrono::system_clock::from_time_t(1795300805);
  absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
      s, dm_, host_, {"/dev/mapper/data", "/dev/mapper/logs"}, options);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_THAT(
      dm_.calls,
      ElementsAre(
          "zero /dev/vdb1 4096", "create cbtd-data-real",
          absl::StrCat("create ", kCow), "zero /dev/vdb2 4096",
          "create cbtd-logs-real", "create cbtd-logs-cow-20261121T224005Z",
          "suspend data", "suspend logs", absl::StrCat("create ", kSnap),
          "load data snapshot-origin", "create cbtd-logs-20261121T224005Z",
          "load logs snapshot-origin", "resume logs", "resume data"));
  ASSERT_EQ(g->snapshots.size(), 2u);
  EXPECT_EQ(g->snapshots[1]->name(), "cbtd-logs-20261121T224005Z");
  for (auto& snap : g->snapshots) snap->Release();
}

TEST_F(DmSnapshotTest, GroupFailureInTheWindowLeavesNothing) {
  for (const char* step : {"load logs snapshot-origin", "resume data",
                           "create cbtd-logs-20261121T224005Z"}) {
    SCOPED_TRACE(step);
    dm_.fail_once = {step};
    Snapshotter s = Make();
    GroupOptions options;
    options.when = std::chrono::system_clock::from_time_t(1795300805);
    absl::StatusOr<GroupSnapshot> g = TakeGroupSnapshot(
        s, dm_, host_, {"/dev/mapper/data", "/dev/mapper/logs"}, options);
    EXPECT_FALSE(g.ok());
    ExpectPristine();
  }
}

}  // namespace
}  // namespace cbtd::snapshot
