#include <gtest/gtest.h>

#include "snapshot/lvm.h"

namespace cbtd::snapshot {
namespace {

// What lvm2 2.03.16 prints for the fields linux_lvm.cc asks for (trimmed):
// a thin pool, its hidden metadata LV, a thin LV, a thick LV with two
// segments (two rows) and a COW snapshot of it.
constexpr char kLvs[] = R"({
  "report": [
    {
      "lv": [
        {"vg_name":"vg", "lv_name":"pool", "lv_uuid":"P", "segtype":"thin-pool",
         "pool_lv":"", "origin":"", "metadata_lv":"[pool_tmeta]", "lv_tags":"",
         "lv_size":"67108864", "data_percent":"81.25", "metadata_percent":"10.94",
         "thin_id":"", "lv_kernel_major":"253", "lv_kernel_minor":"3",
         "lv_active":"1", "lv_snapshot_invalid":"0"},
        {"vg_name":"vg", "lv_name":"[pool_tmeta]", "lv_uuid":"M", "segtype":"linear",
         "pool_lv":"", "origin":"", "metadata_lv":"", "lv_tags":"",
         "lv_size":"4194304", "data_percent":"", "metadata_percent":"",
         "thin_id":"", "lv_kernel_major":"253", "lv_kernel_minor":"0",
         "lv_active":"1", "lv_snapshot_invalid":"0"},
        {"vg_name":"vg", "lv_name":"thin", "lv_uuid":"T", "segtype":"thin",
         "pool_lv":"pool", "origin":"", "metadata_lv":"", "lv_tags":"a,cbtd",
         "lv_size":"33554432", "data_percent":"50.00", "metadata_percent":"",
         "thin_id":"7", "lv_kernel_major":"253", "lv_kernel_minor":"4",
         "lv_active":"1", "lv_snapshot_invalid":"0"},
        {"vg_name":"vg", "lv_name":"thick", "lv_uuid":"K", "segtype":"linear",
         "pool_lv":"", "origin":"", "metadata_lv":"", "lv_tags":"",
         "lv_size":"33554432", "data_percent":"", "metadata_percent":"",
         "thin_id":"", "lv_kernel_major":"253", "lv_kernel_minor":"5",
         "lv_active":"1", "lv_snapshot_invalid":"0"},
        {"vg_name":"vg", "lv_name":"thick", "lv_uuid":"K", "segtype":"linear",
         "pool_lv":"", "origin":"", "metadata_lv":"", "lv_tags":"",
         "lv_size":"33554432", "data_percent":"", "metadata_percent":"",
         "thin_id":"", "lv_kernel_major":"253", "lv_kernel_minor":"5",
         "lv_active":"1", "lv_snapshot_invalid":"0"},
        {"vg_name":"vg", "lv_name":"s", "lv_uuid":"S", "segtype":"linear",
         "pool_lv":"", "origin":"thick", "metadata_lv":"", "lv_tags":"cbtd",
         "lv_size":"33554432", "data_percent":"100.00", "metadata_percent":"",
         "thin_id":"", "lv_kernel_major":"-1", "lv_kernel_minor":"-1",
         "lv_active":"0", "lv_snapshot_invalid":"1"}
      ]
    }
  ]
})";

TEST(ParseLvsJsonTest, ReadsEveryFieldOncePerLv) {
  absl::StatusOr<std::vector<LvReport>> lvs = ParseLvsJson(kLvs);
  ASSERT_TRUE(lvs.ok()) << lvs.status();
  ASSERT_EQ(lvs->size(), 5u);  // the second "thick" segment row is dropped
  const LvReport& pool = (*lvs)[0];
  EXPECT_EQ(pool.segtype, "thin-pool");
  EXPECT_EQ(pool.metadata_lv, "[pool_tmeta]");
  EXPECT_DOUBLE_EQ(*pool.data_percent, 81.25);
  EXPECT_DOUBLE_EQ(*pool.metadata_percent, 10.94);
  const LvReport& thin = (*lvs)[2];
  EXPECT_EQ(thin.pool_lv, "pool");
  EXPECT_EQ(thin.thin_id, 7u);
  EXPECT_EQ(thin.size_bytes, 32u << 20);
  EXPECT_EQ(thin.kernel_major, 253);
  EXPECT_EQ(thin.kernel_minor, 4);
  EXPECT_TRUE(thin.active);
  EXPECT_TRUE(thin.HasTag("cbtd"));
  EXPECT_TRUE(thin.HasTag("a"));
  EXPECT_FALSE(thin.HasTag("cbt"));
  EXPECT_FALSE((*lvs)[3].data_percent.has_value());
  EXPECT_FALSE((*lvs)[3].thin_id.has_value());
  const LvReport& snap = (*lvs)[4];
  EXPECT_EQ(snap.origin, "thick");
  EXPECT_TRUE(snap.snapshot_invalid);
  EXPECT_FALSE(snap.active);
  EXPECT_EQ(snap.kernel_major, -1);
}

TEST(ParseLvsJsonTest, RejectsWhatIsNotAReport) {
  EXPECT_FALSE(ParseLvsJson("  Volume group \"x\" not found").ok());
  EXPECT_FALSE(ParseLvsJson("{\"x\": 1}").ok());
  absl::StatusOr<std::vector<LvReport>> empty =
      ParseLvsJson(R"({"report":[{"lv":[]}]})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseVgsJsonTest, ReadsExtentsAndFree) {
  absl::StatusOr<VgReport> vg = ParseVgsJson(
      R"({"report":[{"vg":[{"vg_name":"vg","vg_extent_size":"4194304",
          "vg_free_count":"12"}]}]})");
  ASSERT_TRUE(vg.ok()) << vg.status();
  EXPECT_EQ(vg->name, "vg");
  EXPECT_EQ(vg->extent_size_bytes, 4u << 20);
  EXPECT_EQ(vg->free_extents, 12u);
}

TEST(DmNameTest, DoublesDashes) {
  struct {
    const char* vg;
    const char* lv;
    const char* want;
  } rows[] = {
      {"vg", "data", "vg-data"},
      {"my-vg", "pool_tmeta", "my--vg-pool_tmeta"},
      {"vg", "a-b-c", "vg-a--b--c"},
      {"vg", "data.cbtd-20261121T224005Z", "vg-data.cbtd--20261121T224005Z"},
  };
  for (const auto& r : rows) EXPECT_EQ(DmName(r.vg, r.lv), r.want) << r.lv;
}

}  // namespace
}  // namespace cbtd::snapshot
