#include "snapshot/caching_lvm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/snapshot/fakes.h"

namespace cbtd::snapshot {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Names(const std::vector<LvReport>& lvs) {
  std::vector<std::string> out;
  for (const LvReport& lv : lvs) out.push_back(lv.vg + "/" + lv.name);
  return out;
}

// VG "vg" holds pool and a; VG "other" holds b.
class CachingLvmTest : public ::testing::Test {
 protected:
  CachingLvmTest() : lvm_(inner_) {
    inner_.Add("pool", "thin-pool");
    inner_.Add("a", "thin").pool_lv = "pool";
    inner_.Add("b", "linear").vg = "other";
  }

  CountingFakeLvm inner_;
  CachingLvm lvm_;
};

TEST_F(CachingLvmTest, RepeatedFullReportsRunOneReport) {
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs("");
    ASSERT_TRUE(lvs.ok()) << lvs.status();
    EXPECT_THAT(Names(*lvs), ElementsAre("vg/pool", "vg/a", "other/b"));
  }
  EXPECT_EQ(inner_.list_lvs_calls, 1);
}

TEST_F(CachingLvmTest, VgReportIsAnsweredFromTheFullReport) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  absl::StatusOr<std::vector<LvReport>> vg = lvm_.ListLvs("vg");
  ASSERT_TRUE(vg.ok()) << vg.status();
  EXPECT_THAT(Names(*vg), ElementsAre("vg/pool", "vg/a"));
  absl::StatusOr<std::vector<LvReport>> other = lvm_.ListLvs("other");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_THAT(Names(*other), ElementsAre("other/b"));
  EXPECT_EQ(inner_.list_lvs_calls, 1);
}

TEST_F(CachingLvmTest, RepeatedVgReportsWithoutAFullOneRunOneReport) {
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::vector<LvReport>> vg = lvm_.ListLvs("vg");
    ASSERT_TRUE(vg.ok()) << vg.status();
    EXPECT_THAT(Names(*vg), ElementsAre("vg/pool", "vg/a"));
  }
  EXPECT_EQ(inner_.list_lvs_calls, 1);
}

// The full report cannot tell a VG without LVs from one that does not
// exist; lvm2 can.
TEST_F(CachingLvmTest, VgAbsentFromTheFullReportIsAskedOfLvm) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  absl::StatusOr<std::vector<LvReport>> missing = lvm_.ListLvs("nosuchvg");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner_.list_lvs_calls, 2);

  // A VG that exists but has no LVs: an empty answer, kept.
  inner_.vg.name = "empty";
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::vector<LvReport>> empty = lvm_.ListLvs("empty");
    ASSERT_TRUE(empty.ok()) << empty.status();
    EXPECT_TRUE(empty->empty());
  }
  EXPECT_EQ(inner_.list_lvs_calls, 3);
}

TEST_F(CachingLvmTest, VgReportIsKeptPerVg) {
  ASSERT_TRUE(lvm_.GetVg("vg").ok());
  absl::StatusOr<VgReport> vg = lvm_.GetVg("vg");
  ASSERT_TRUE(vg.ok()) << vg.status();
  EXPECT_EQ(vg->free_extents, 100u);
  EXPECT_EQ(inner_.get_vg_calls, 1);
  EXPECT_EQ(lvm_.GetVg("other").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(lvm_.GetVg("other").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner_.get_vg_calls, 3) << "an error is not kept";
}

TEST_F(CachingLvmTest, CreatedSnapshotAppearsInTheNextReport) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  ASSERT_TRUE(lvm_.ListLvs("vg").ok());
  ASSERT_TRUE(lvm_.GetVg("vg").ok());
  SnapshotRequest req;
  req.vg = "vg";
  req.origin = "a";
  req.name = "a.snap";
  req.tag = "cbtd";
  ASSERT_TRUE(lvm_.CreateSnapshot(req).ok());

  absl::StatusOr<std::vector<LvReport>> vg = lvm_.ListLvs("vg");
  ASSERT_TRUE(vg.ok()) << vg.status();
  EXPECT_THAT(Names(*vg), ElementsAre("vg/pool", "vg/a", "vg/a.snap"));
  EXPECT_EQ(inner_.list_lvs_calls, 2);
  inner_.vg.free_extents = 90;
  absl::StatusOr<VgReport> vg_report = lvm_.GetVg("vg");
  ASSERT_TRUE(vg_report.ok()) << vg_report.status();
  EXPECT_EQ(vg_report->free_extents, 90u);
  EXPECT_EQ(inner_.get_vg_calls, 2);
}

TEST_F(CachingLvmTest, SetActiveShowsInTheNextReport) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  ASSERT_TRUE(lvm_.SetActive("vg", "a", true).ok());
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs("");
  ASSERT_TRUE(lvs.ok()) << lvs.status();
  EXPECT_TRUE((*lvs)[1].active);
  EXPECT_EQ(inner_.list_lvs_calls, 2);
}

TEST_F(CachingLvmTest, RemovedLvIsGoneFromTheNextReport) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  ASSERT_TRUE(lvm_.RemoveLv("other", "b").ok());
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs("");
  ASSERT_TRUE(lvs.ok()) << lvs.status();
  EXPECT_THAT(Names(*lvs), ElementsAre("vg/pool", "vg/a"));
  EXPECT_EQ(inner_.list_lvs_calls, 2);
  // "other" now has no LV: lvm2 says whether it still exists.
  EXPECT_EQ(lvm_.ListLvs("other").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(inner_.list_lvs_calls, 3);
}

// lvcreate may have changed lvm2's state before it failed.
TEST_F(CachingLvmTest, FailedCreateStillDropsTheReport) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  inner_.create_error = absl::ResourceExhaustedError("insufficient");
  SnapshotRequest req;
  req.vg = "vg";
  req.origin = "a";
  req.name = "a.snap";
  EXPECT_EQ(lvm_.CreateSnapshot(req).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  EXPECT_EQ(inner_.list_lvs_calls, 2);
}

// After the operation, a long-lived holder (a consistency point's
// Snapshotter) sees lvm2 as it is: nothing is answered from a report.
TEST_F(CachingLvmTest, StoppedCachingAsksLvmEveryTime) {
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  ASSERT_TRUE(lvm_.GetVg("vg").ok());
  lvm_.StopCaching();
  inner_.Add("c", "thin");  // made by someone else
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs("vg");
  ASSERT_TRUE(lvs.ok()) << lvs.status();
  EXPECT_THAT(Names(*lvs), ElementsAre("vg/pool", "vg/a", "vg/c"));
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  ASSERT_TRUE(lvm_.GetVg("vg").ok());
  EXPECT_EQ(inner_.list_lvs_calls, 4);
  EXPECT_EQ(inner_.get_vg_calls, 2);
}

TEST_F(CachingLvmTest, FailedReportIsNotKept) {
  inner_.list_error = absl::UnavailableError("lvm2 lock busy");
  absl::StatusOr<std::vector<LvReport>> failed = lvm_.ListLvs("");
  EXPECT_EQ(failed.status(), absl::UnavailableError("lvm2 lock busy"));
  absl::StatusOr<std::vector<LvReport>> lvs = lvm_.ListLvs("");
  ASSERT_TRUE(lvs.ok()) << lvs.status();
  EXPECT_EQ(lvs->size(), 3u);
  ASSERT_TRUE(lvm_.ListLvs("").ok());
  EXPECT_EQ(inner_.list_lvs_calls, 2);
}

}  // namespace
}  // namespace cbtd::snapshot
