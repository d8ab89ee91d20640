#include "agent/file_point.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/common/temp_dir.h"
#include "tests/snapshot/fakes.h"

namespace cbtd::agent {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::Return;
using ::testing::StrictMock;

class FilePointTest : public ::testing::Test {
 protected:
  FilePointTest() {
    image_ = dir_.path() + "/vm.img";
    std::ofstream(image_) << "image bytes";
    info_.path = image_;
    info_.kind = snapshot::VolumeKind::kImageFile;
    info_.not_snapshottable_reason = "an image file";
    VolumeConfig v;
    v.name = "vm";
    v.path = image_;
    request_.volumes.push_back(v);
    // The point's file operations act on the test's directory.
    ON_CALL(host_, RemoveFile(_))
        .WillByDefault(Invoke([](const std::string& p) {
          std::filesystem::remove(p);
          return absl::OkStatus();
        }));
    ON_CALL(host_, ListDirectory(_, _))
        .WillByDefault(
            Invoke([](const std::string& dir, const std::string& prefix) {
              std::vector<std::string> names;
              for (const auto& e : std::filesystem::directory_iterator(dir)) {
                const std::string name = e.path().filename().string();
                if (name.starts_with(prefix)) names.push_back(name);
              }
              return names;
            }));
  }

  std::vector<std::string> Entries() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  test::TempDir dir_;
  std::string image_;
  snapshot::VolumeInfo info_;
  ConsistencyRequest request_;
  StrictMock<snapshot::MockHost> host_;
  const absl::Time now_ = absl::FromUnixSeconds(1795300805);
};

TEST_F(FilePointTest, ImageIsReadFromAReflinkCopyRemovedWithThePoint) {
  std::string clone;
  EXPECT_CALL(host_, CloneFile(image_, _))
      .WillOnce(Invoke([&](const std::string& from, const std::string& to) {
        clone = to;
        std::filesystem::copy_file(from, to);
        return absl::OkStatus();
      }));
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ(clone, dir_.path() + "/.vm.img.cbtd-20261121T224005Z");
  ASSERT_EQ((*point)->snapshots().size(), 1u);
  EXPECT_EQ((*point)->snapshots()[0].device_path, clone);
  EXPECT_EQ((*point)->snapshots()[0].snapshot_name, clone);
  EXPECT_CALL(host_, RemoveFile(clone));
  point->reset();
  EXPECT_EQ(Entries(), std::vector<std::string>{"vm.img"});
}

TEST_F(FilePointTest, AKeptCopyOutlivesThePointUntilTheNextStart) {
  EXPECT_CALL(host_, CloneFile(image_, _))
      .WillOnce(Invoke([&](const std::string& from, const std::string& to) {
        std::filesystem::copy_file(from, to);
        return absl::OkStatus();
      }));
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  ASSERT_TRUE(point.ok()) << point.status();
  (*point)->Keep("vm");  // the hypervisor's consistency point
  point->reset();
  EXPECT_EQ(Entries(), (std::vector<std::string>{
                           ".vm.img.cbtd-20261121T224005Z", "vm.img"}));
  EXPECT_CALL(host_, ListDirectory(dir_.path(), ".vm.img.cbtd-"));
  EXPECT_CALL(host_,
              RemoveFile(dir_.path() + "/.vm.img.cbtd-20261121T224005Z"));
  EXPECT_EQ(RemoveStaleClones(host_, image_).size(), 1u);
  EXPECT_EQ(Entries(), std::vector<std::string>{"vm.img"});
}

TEST_F(FilePointTest, NoReflinksIsRefusedNamingTheSetting) {
  EXPECT_CALL(host_, CloneFile(image_, _))
      .WillOnce(Return(absl::UnimplementedError(
          "the filesystem of " + image_ + " cannot make reflink copies")));
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  EXPECT_EQ(point.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(point.status().message(), HasSubstr("volume 'vm'"));
  EXPECT_THAT(point.status().message(), HasSubstr("set snapshot = none"));
}

TEST_F(FilePointTest, LiveReadUsesTheImageItself) {
  request_.volumes[0].live_read = true;  // StrictMock: no CloneFile
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ((*point)->snapshots()[0].device_path, image_);
  EXPECT_EQ((*point)->snapshots()[0].snapshot_name, "");
}

TEST_F(FilePointTest, BlockDeviceNeedsSnapshotNone) {
  info_.kind = snapshot::VolumeKind::kBlockDevice;
  info_.not_snapshottable_reason = "/dev/sdb is a plain block device";
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  EXPECT_EQ(point.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(point.status().message(), HasSubstr("plain block device"));
}

// A live block device is held exclusively for the point's life, and one
// in use is refused, naming it and what to do.
TEST_F(FilePointTest, LiveBlockDeviceIsHeldForThePointsLife) {
  info_ = snapshot::VolumeInfo{};
  info_.path = "/dev/sdb1";
  info_.kind = snapshot::VolumeKind::kBlockDevice;
  request_.volumes[0].path = info_.path;
  request_.volumes[0].live_read = true;
  struct Hold : snapshot::ExclusiveHold {
    explicit Hold(bool& held) : held_(held) { held_ = true; }
    ~Hold() override { held_ = false; }
    bool& held_;
  };
  bool held = false;
  EXPECT_CALL(host_, HoldExclusive("/dev/sdb1"))
      .WillOnce(Invoke([&](const std::string&) {
        return absl::StatusOr<std::unique_ptr<snapshot::ExclusiveHold>>(
            std::make_unique<Hold>(held));
      }))
      .WillOnce(Return(absl::FailedPreconditionError(
          "/dev/sdb1 is in use (mounted, or held by a device-mapper or md "
          "device)")));
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_TRUE(held);
  EXPECT_EQ((*point)->snapshots()[0].device_path, "/dev/sdb1");
  point->reset();
  EXPECT_FALSE(held) << "the hold outlived the point";

  auto busy = TakeFileOrRawPoint(host_, request_, info_, now_);
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.status().message(), HasSubstr("/dev/sdb1 is in use"));
  EXPECT_THAT(busy.status().message(), HasSubstr("unmount it"));
}

TEST_F(FilePointTest, AGroupMemberIsRefused) {
  request_.group = "g";
  auto point = TakeFileOrRawPoint(host_, request_, info_, now_);
  EXPECT_EQ(point.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(point.status().message(),
              HasSubstr("cannot share an instant with other volumes"));
}

TEST_F(FilePointTest, StaleCopiesOfThisImageOnlyAreRemoved) {
  std::ofstream(dir_.path() + "/.vm.img.cbtd-20261121T224005Z") << "x";
  std::ofstream(dir_.path() + "/.other.img.cbtd-20261121T224005Z") << "x";
  std::ofstream(dir_.path() + "/vm.img.bak") << "x";
  EXPECT_CALL(host_, ListDirectory(dir_.path(), ".vm.img.cbtd-"));
  EXPECT_CALL(host_, RemoveFile(_));
  const std::vector<std::string> removed = RemoveStaleClones(host_, image_);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_THAT(removed[0], HasSubstr(".vm.img.cbtd-20261121T224005Z"));
  EXPECT_EQ(Entries(),
            (std::vector<std::string>{".other.img.cbtd-20261121T224005Z",
                                      "vm.img", "vm.img.bak"}));
}

}  // namespace
}  // namespace cbtd::agent
