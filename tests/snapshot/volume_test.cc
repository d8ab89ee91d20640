#include "snapshot/volume.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/snapshot/fakes.h"

namespace cbtd::snapshot {
namespace {

using ::testing::HasSubstr;
using ::testing::NiceMock;
using ::testing::Return;

class DiscoverTest : public ::testing::Test {
 protected:
  DiscoverTest() {
    LvReport& pool = lvm_.Add("pool", "thin-pool");
    pool.data_percent = 42;
    pool.metadata_percent = 7;
    LvReport& thin = lvm_.Add("data", "thin");
    thin.uuid = "T-uuid";
    thin.pool_lv = "pool";
    thin.thin_id = 3;
    Device("/dev/vg/data", 4, "vg-data", kLvmUuid, &thin);
    LvReport& thick = lvm_.Add("log", "striped");
    Device("/dev/vg/log", 5, "vg-log", kLvmUuid, &thick);
    LvReport& cow = lvm_.Add("log.snap", "linear");
    cow.origin = "log";
    Device("/dev/vg/log.snap", 6, "vg-log.snap", kLvmUuid, &cow);
    Device("/dev/mapper/vg-pool-tpool", 7, "vg-pool-tpool", kLvmUuid + "-tpool",
           nullptr);
    Device("/dev/mapper/crypt", 8, "crypt", "CRYPT-LUKS2-x", nullptr);
    EXPECT_CALL(host_, StatBlockDevice("/dev/sdb"))
        .WillRepeatedly(Return(BlockDeviceId{8, 16, 1 << 30}));
    EXPECT_CALL(dm_, InfoByDevice(8, 16))
        .WillRepeatedly(Return(std::optional<DmInfo>()));
    EXPECT_CALL(host_, StatBlockDevice("/dev/vg/gone"))
        .WillRepeatedly(Return(absl::NotFoundError("ENOENT")));
  }

  void Device(const std::string& path, int minor, const std::string& name,
              const std::string& uuid, LvReport* lv) {
    if (lv != nullptr) {
      lv->kernel_major = 253;
      lv->kernel_minor = minor;
    }
    EXPECT_CALL(host_, StatBlockDevice(path))
        .WillRepeatedly(Return(BlockDeviceId{253, uint32_t(minor), 32 << 20}));
    DmInfo info;
    info.name = name;
    info.uuid = uuid;
    EXPECT_CALL(dm_, InfoByDevice(253, uint32_t(minor)))
        .WillRepeatedly(Return(std::optional<DmInfo>(info)));
  }

  absl::StatusOr<VolumeInfo> Discover(const std::string& path) {
    return DiscoverVolume(path, lvm_, dm_, host_);
  }

  const std::string kLvmUuid = "LVM-" + std::string(64, 'u');
  FakeLvm lvm_;
  NiceMock<MockDeviceMapper> dm_;
  NiceMock<MockHost> host_;
};

TEST_F(DiscoverTest, ThinLvWithWhatTrackingNeeds) {
  absl::StatusOr<VolumeInfo> v = Discover("vg/data");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->path, "/dev/vg/data");
  EXPECT_EQ(v->kind, VolumeKind::kThinLv);
  EXPECT_EQ(v->size_bytes, 32u << 20);
  EXPECT_EQ(v->uuid, "T-uuid");
  EXPECT_EQ(v->thin_id, 3u);
  EXPECT_EQ(v->pool_dm_name, "vg-pool-tpool");
  EXPECT_EQ(v->pool_metadata_dm_path, "/dev/mapper/vg-pool_tmeta");
  EXPECT_DOUBLE_EQ(*v->pool_data_percent, 42);
  EXPECT_TRUE(v->not_snapshottable_reason.empty());
}

TEST_F(DiscoverTest, KindsAndReasons) {
  struct {
    const char* path;
    VolumeKind kind;
    const char* reason;  // empty: snapshottable
  } rows[] = {
      {"/dev/vg/log", VolumeKind::kThickLv, ""},
      {"/dev/vg/log.snap", VolumeKind::kOtherDm, "COW snapshot of vg/log"},
      {"/dev/mapper/vg-pool-tpool", VolumeKind::kOtherDm, "internal layer"},
      {"/dev/mapper/crypt", VolumeKind::kOtherDm, "lvm2 does not manage"},
      {"/dev/sdb", VolumeKind::kBlockDevice, "plain block device"},
  };
  for (const auto& r : rows) {
    absl::StatusOr<VolumeInfo> v = Discover(r.path);
    ASSERT_TRUE(v.ok()) << r.path << ": " << v.status();
    EXPECT_EQ(v->kind, r.kind) << r.path;
    if (*r.reason == '\0') {
      EXPECT_EQ(v->not_snapshottable_reason, "") << r.path;
    } else {
      EXPECT_THAT(v->not_snapshottable_reason, HasSubstr(r.reason)) << r.path;
    }
  }
}

TEST_F(DiscoverTest, MissingLvIsNotFoundAndSaysSo) {
  absl::StatusOr<VolumeInfo> v = Discover("/dev/vg/gone");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("/dev/vg/gone does not exist"));
}

}  // namespace
}  // namespace cbtd::snapshot
