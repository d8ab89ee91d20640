// Protocol tests of the thin-delta and era methods against a scripted
// runner and device-mapper (one call list, in dmsetup notation): order of
// reserve / tool / release, release on every path, stale reservations, loss
// cases.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "cbt/cow_store.h"
#include "cbt/era_method.h"
#include "cbt/lvm_methods.h"
#include "cbt/lvm_query.h"
#include "cbt/thin_delta_method.h"
#include "cbt/thin_delta_xml.h"
#include "tests/cbt/fake_device_mapper.h"
#include "tests/cbt/fake_runner.h"

namespace cbtd::cbt {
namespace {

std::string TempLockPath() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/cbt-methods-test-" +
         std::to_string(::getpid()) + ".lock";
}

constexpr char kPool[] = "vg-pool-tpool";
constexpr char kPoolStatusFree[] =
    "0 409600 thin-pool 3 20/1024 30/3200 - rw discard_passdown "
    "queue_if_no_space - 1024\n";
constexpr char kPoolStatusHeld[] =
    "0 409600 thin-pool 3 20/1024 30/3200 17 rw discard_passdown "
    "queue_if_no_space - 1024\n";
constexpr char kDelta[] =
    "<superblock uuid=\"\" time=\"1\" transaction=\"2\" "
    "data_block_size=\"128\" "
    "nr_data_blocks=\"3200\">\n<diff left=\"1\" right=\"2\">\n"
    "<right_only begin=\"0\" length=\"1\"/>\n"
    "<left_only begin=\"2\" length=\"1\"/>\n"
    "<different begin=\"15\" length=\"5\"/>\n</diff>\n</superblock>\n";

ThinDeltaRequest Request() {
  ThinDeltaRequest r;
  r.pool_dm_name = kPool;
  r.tmeta_path = "/dev/mapper/vg-pool_tmeta";
  r.base_thin_id = 1;
  r.new_thin_id = 2;
  r.volume_size_bytes = 16 * 65536 + 4096;  // last block partial
  r.lock_path = TempLockPath();
  return r;
}

TEST(ThinDeltaMethodTest, ReserveDeltaReleaseInOrder) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string(kPoolStatusFree));
  dm.On("dmsetup message", std::string());
  run.On("thin_delta", std::string(kDelta));
  absl::StatusOr<ChangedSet> s = ComputeThinDelta(run, dm, Request());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(run.calls,
            (std::vector<std::string>{
                "dmsetup status vg-pool-tpool",
                "dmsetup message vg-pool-tpool 0 reserve_metadata_snap",
                "thin_delta --metadata-snap --snap1 1 --snap2 2 "
                "/dev/mapper/vg-pool_tmeta",
                "dmsetup message vg-pool-tpool 0 release_metadata_snap"}));
  // Clipped at the volume's end: block 15 is only partly inside.
  EXPECT_EQ(s->changed, (ExtentSet{{0, 65536}, {15 * 65536, 65536 + 4096}}));
  EXPECT_EQ(s->zeroed, (ExtentSet{{2 * 65536, 65536}}));
  EXPECT_EQ(s->granularity_bytes, 65536u);
  EXPECT_FALSE(s->lost);
}

TEST(ThinDeltaMethodTest, ReleasedWhenThinDeltaFails) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string(kPoolStatusFree));
  dm.On("dmsetup message", std::string());
  run.On("thin_delta", absl::InternalError("thin_delta: bad snap"));
  absl::StatusOr<ChangedSet> s = ComputeThinDelta(run, dm, Request());
  EXPECT_FALSE(s.ok());
  ASSERT_FALSE(run.calls.empty());
  EXPECT_EQ(run.calls.back(),
            "dmsetup message vg-pool-tpool 0 release_metadata_snap");
}

TEST(ThinDeltaMethodTest, ReleasedWhenOutputIsGarbage) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string(kPoolStatusFree));
  dm.On("dmsetup message", std::string());
  run.On("thin_delta", std::string("<superblock"));
  EXPECT_FALSE(ComputeThinDelta(run, dm, Request()).ok());
  EXPECT_EQ(run.calls.back(),
            "dmsetup message vg-pool-tpool 0 release_metadata_snap");
}

TEST(ThinDeltaMethodTest, StaleReservationReleasedFirst) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string(kPoolStatusHeld));
  dm.On("dmsetup message", std::string());
  run.On("thin_delta", std::string(kDelta));
  ASSERT_TRUE(ComputeThinDelta(run, dm, Request()).ok());
  ASSERT_GE(run.calls.size(), 3u);
  EXPECT_EQ(run.calls[1],
            "dmsetup message vg-pool-tpool 0 release_metadata_snap");
  EXPECT_EQ(run.calls[2],
            "dmsetup message vg-pool-tpool 0 reserve_metadata_snap");
}

TEST(ThinDeltaMethodTest, RefusesANonPoolDevice) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string("0 409600 linear\n"));
  absl::StatusOr<ChangedSet> s = ComputeThinDelta(run, dm, Request());
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(run.calls.size(), 1u);  // nothing reserved
}

// A failed pool's status is one word: an error naming the pool, and
// nothing reserved.
TEST(ThinDeltaMethodTest, FailedPoolStatusIsAnErrorNamingThePool) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string("0 409600 thin-pool Fail\n"));
  absl::StatusOr<ChangedSet> s = ComputeThinDelta(run, dm, Request());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(kPool), std::string::npos) << s.status();
  EXPECT_EQ(run.calls.size(), 1u);  // nothing reserved
}

TEST(ThinDeltaMethodTest, ScopedSnapReleasesOnDestruction) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup message", std::string());
  {
    auto snap = ScopedMetadataSnap::Reserve(dm, kPool, /*era=*/false);
    ASSERT_TRUE(snap.ok());
  }
  EXPECT_EQ(run.calls,
            (std::vector<std::string>{
                "dmsetup message vg-pool-tpool 0 reserve_metadata_snap",
                "dmsetup message vg-pool-tpool 0 release_metadata_snap"}));
}

// --- thin mapped (what a full reads) ---------------------------------------

constexpr char kDump[] =
    "<superblock uuid=\"\" time=\"1\" transaction=\"2\" flags=\"0\" "
    "version=\"2\" data_block_size=\"128\" nr_data_blocks=\"3200\">\n"
    "  <device dev_id=\"2\" mapped_blocks=\"5\" transaction=\"1\" "
    "creation_time=\"0\" snap_time=\"1\">\n"
    "    <range_mapping origin_begin=\"0\" data_begin=\"7\" length=\"2\" "
    "time=\"0\"/>\n"
    "    <single_mapping origin_block=\"5\" data_block=\"2\" time=\"1\"/>\n"
    "    <range_mapping origin_begin=\"15\" data_begin=\"30\" length=\"4\" "
    "time=\"1\"/>\n"
    "  </device>\n</superblock>\n";

ThinMapRequest MapRequest() {
  ThinMapRequest r;
  r.pool_dm_name = kPool;
  r.tmeta_path = "/dev/mapper/vg-pool_tmeta";
  r.thin_id = 2;
  r.volume_size_bytes = 16 * 65536 + 4096;  // last block partial
  r.lock_path = TempLockPath();
  return r;
}

TEST(ThinMappedTest, ReserveDumpReleaseInOrderAndClipToTheVolume) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup status", std::string(kPoolStatusFree));
  dm.On("dmsetup message", std::string());
  run.On("thin_dump", std::string(kDump));
  absl::StatusOr<ExtentSet> mapped = ComputeThinMapped(run, dm, MapRequest());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(run.calls,
            (std::vector<std::string>{
                "dmsetup status vg-pool-tpool",
                "dmsetup message vg-pool-tpool 0 reserve_metadata_snap",
                "thin_dump --metadata-snap --dev-id 2 "
                "/dev/mapper/vg-pool_tmeta",
                "dmsetup message vg-pool-tpool 0 release_metadata_snap"}));
  EXPECT_EQ(*mapped, (ExtentSet{{0, 2 * 65536},
                                {5 * 65536, 65536},
                                {15 * 65536, 65536 + 4096}}));
}

TEST(ThinMappedTest, ReleasedWhenThinDumpFailsOrTheDeviceIsMissing) {
  for (bool tool_fails : {true, false}) {
    FakeRunner run;
    FakeDeviceMapper dm(run.calls);
    dm.On("dmsetup status", std::string(kPoolStatusFree));
    dm.On("dmsetup message", std::string());
    if (tool_fails) {
      run.On("thin_dump", absl::InternalError("thin_dump: bad metadata"));
    } else {
      run.On("thin_dump", std::string(kDump));
    }
    ThinMapRequest req = MapRequest();
    if (!tool_fails) req.thin_id = 9;  // not in the dump
    absl::StatusOr<ExtentSet> mapped = ComputeThinMapped(run, dm, req);
    ASSERT_FALSE(mapped.ok());
    if (!tool_fails) {
      EXPECT_TRUE(absl::IsNotFound(mapped.status())) << mapped.status();
      EXPECT_NE(mapped.status().message().find("device 9"), std::string::npos);
    }
    EXPECT_EQ(run.calls.back(),
              "dmsetup message vg-pool-tpool 0 release_metadata_snap");
  }
}

TEST(ThinMappedTest, DumpParserRejectsWhatItDoesNotKnow) {
  for (const char* bad :
       {"<superblock data_block_size=\"128\"><device dev_id=\"2\">"
        "<def name=\"1\"/></device></superblock>",
        "<superblock data_block_size=\"100\"><device dev_id=\"2\">"
        "</device></superblock>",
        "<superblock data_block_size=\"128\"><device dev_id=\"2\">"
        "<range_mapping origin_begin=\"18446744073709551615\" "
        "data_begin=\"0\" length=\"2\" time=\"0\"/></device>"
        "</superblock>",
        "<superblock data_block_size=\"128\"><device dev_id=\"2\">"
        "<single_mapping data_block=\"0\" time=\"0\"/></device>"
        "</superblock>"}) {
    absl::StatusOr<ThinMapping> m = ParseThinDumpXml(bad, 2);
    EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << bad << m.status();
  }
  // Other devices (a dump without --dev-id) are skipped.
  const std::string two =
      "<superblock data_block_size=\"256\">"
      "<device dev_id=\"1\"><single_mapping origin_block=\"3\" "
      "data_block=\"0\" time=\"0\"/></device>"
      "<device dev_id=\"2\"><single_mapping origin_block=\"1\" "
      "data_block=\"1\" time=\"0\"/></device></superblock>";
  absl::StatusOr<ThinMapping> m = ParseThinDumpXml(two, 2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->mapped_bytes, (ExtentSet{{131072, 131072}}));
  EXPECT_EQ(m->data_block_sectors, 256u);
}

// --- era -------------------------------------------------------------------

EraRequest EraReq(uint64_t since) {
  EraRequest r;
  r.era_dm_name = "cbtd-era-x";
  r.metadata_path = "/dev/vdb";
  r.since_era = since;
  r.lock_path = TempLockPath();
  return r;
}

constexpr char kEraTable[] = "0 204800 era 252:1 252:0 128\n";
constexpr char kGeneration[] = "00aa11bb22cc33dd";

// A live era stack: its table, its dm UUID ("" = no generation) and the
// era its status reports; messages succeed.
void ScriptEraStack(FakeDeviceMapper& dm, const std::string& uuid, int era) {
  dm.On("dmsetup table", std::string(kEraTable));
  dm.On("dmsetup info -c", uuid + "\n");
  dm.On("dmsetup status", absl::StrCat("0 204800 era 8 30/4096 ", era, " -\n"));
  dm.On("dmsetup message", std::string());
}

TEST(EraMethodTest, CheckpointSnapInvalidateDrop) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  ScriptEraStack(dm, std::string("CBTD-ERA-") + kGeneration, 7);
  run.On("era_invalidate",
         std::string("<blocks><range begin=\"2\" end=\"4\"/></blocks>"));
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, EraReq(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->set.lost);
  EXPECT_EQ(r->next_since_era, 6u);
  EXPECT_EQ(r->set.changed, (ExtentSet{{2 * 65536, 2 * 65536}}));
  EXPECT_EQ(r->set.volume_size_bytes, 204800u * 512);
  EXPECT_EQ(r->generation, kGeneration);
  EXPECT_EQ(run.calls,
            (std::vector<std::string>{
                "dmsetup table cbtd-era-x",
                "dmsetup info -c --noheadings -o uuid cbtd-era-x",
                "dmsetup status cbtd-era-x",
                "dmsetup message cbtd-era-x 0 checkpoint",
                "dmsetup status cbtd-era-x",
                "dmsetup message cbtd-era-x 0 take_metadata_snap",
                "era_invalidate --metadata-snapshot --written-since 5 /dev/vdb",
                "dmsetup message cbtd-era-x 0 drop_metadata_snap"}));
}

TEST(EraMethodTest, EraWentBackwardsIsLost) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  ScriptEraStack(dm, std::string("CBTD-ERA-") + kGeneration, 2);
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, EraReq(9));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->set.lost);
  EXPECT_NE(r->set.lost_reason.find("rebuilt"), std::string::npos);
  EXPECT_EQ(r->set.changed, (ExtentSet{{0, 204800u * 512}}));
}

// A stack rebuilt with fresh metadata that has already counted past the
// stored era: only the generation tells.
TEST(EraMethodTest, OtherGenerationIsLostEvenWhenTheEraMovedOn) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  ScriptEraStack(dm, "CBTD-ERA-ffff000011112222", 40);
  EraRequest req = EraReq(9);
  req.expected_generation = kGeneration;
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->set.lost);
  EXPECT_NE(r->set.lost_reason.find("was rebuilt: its generation is "
                                    "ffff000011112222, the last run's was "
                                    "00aa11bb22cc33dd"),
            std::string::npos)
      << r->set.lost_reason;
  EXPECT_EQ(r->set.changed, (ExtentSet{{0, 204800u * 512}}));
  EXPECT_EQ(r->next_since_era, 39u) << "the checkpoint anchors the next run";
  for (const std::string& c : run.calls) {
    EXPECT_EQ(c.find("era_invalidate"), std::string::npos) << c;
  }
}

TEST(EraMethodTest, StackWithoutGenerationIsLostWhenOneIsExpected) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  ScriptEraStack(dm, "", 40);
  EraRequest req = EraReq(9);
  req.expected_generation = kGeneration;
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->set.lost);
  EXPECT_NE(r->set.lost_reason.find("carries no cbtd generation"),
            std::string::npos)
      << r->set.lost_reason;
}

TEST(EraMethodTest, SameGenerationTracks) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  ScriptEraStack(dm, std::string("CBTD-ERA-") + kGeneration, 7);
  run.On("era_invalidate", std::string("<blocks></blocks>"));
  EraRequest req = EraReq(5);
  req.expected_generation = kGeneration;
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->set.lost) << r->set.lost_reason;
  EXPECT_TRUE(r->set.changed.empty());
}

TEST(EraMethodTest, NotAnEraDevice) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup table", std::string("0 204800 linear 252:0 0\n"));
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, EraReq(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EraMethodTest, MissingDeviceSaysHowToAssembleIt) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  dm.On("dmsetup table",
        absl::NotFoundError("no device-mapper device cbtd-era-x"));
  absl::StatusOr<EraResult> r = ComputeEra(run, dm, EraReq(1));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("cbtctl era-stack assemble cbtd-era-x"),
            std::string::npos)
      << r.status();
}

TEST(EraMethodTest, DroppedWhenInvalidateFails) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  ScriptEraStack(dm, std::string("CBTD-ERA-") + kGeneration, 7);
  run.On("era_invalidate", absl::InternalError("boom"));
  EXPECT_FALSE(ComputeEra(run, dm, EraReq(5)).ok());
  EXPECT_EQ(run.calls.back(),
            "dmsetup message cbtd-era-x 0 drop_metadata_snap");
}

}  // namespace
}  // namespace cbtd::cbt

namespace cbtd::cbt {
namespace {

// --- LVM facts, auto selection, cow-table through the real reader ---------

TEST(LvmQueryTest, ParsesThinLv) {
  FakeRunner run;
  run.On("lvs", std::string(R"({"report": [{"lv": [{"vg_name":"vg",
      "lv_name":"snap-1", "segtype":"thin", "pool_lv":"pool", "origin":"data",
      "lv_attr":"Vwi---tz-k", "lv_size":"41943040", "thin_id":"7"}]}]})"));
  absl::StatusOr<LvInfo> lv = QueryLv(run, "vg/snap-1");
  ASSERT_TRUE(lv.ok()) << lv.status();
  EXPECT_EQ(lv->thin_id, 7u);
  EXPECT_TRUE(lv->has_thin_id);
  EXPECT_EQ(lv->size_bytes, 41943040u);
  EXPECT_EQ(lv->pool_lv, "pool");
}

TEST(LvmQueryTest, MissingLvIsNotFound) {
  FakeRunner run;
  run.On("lvs", absl::InternalError(
                    "lvs exited 5: Failed to find logical volume \"vg/x\""));
  EXPECT_TRUE(absl::IsNotFound(QueryLv(run, "vg/x").status()));
  EXPECT_EQ(QueryLv(run, "novg").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LvmQueryTest, DmNamesDoubleDashes) {
  EXPECT_EQ(LvmDmName("my-vg", "pool", "tpool"), "my--vg-pool-tpool");
  EXPECT_EQ(LvmDmName("vg", "snap-1", "cow"), "vg-snap--1-cow");
  EXPECT_EQ(LvmDmName("vg", "pool_tmeta"), "vg-pool_tmeta");
}

TEST(AutoTest, PicksByVolumeKind) {
  EXPECT_EQ(SelectMethod(VolumeKind::kLvmThin, false), Method::kThinDelta);
  EXPECT_EQ(SelectMethod(VolumeKind::kLvmThick, false), Method::kCowTable);
  EXPECT_EQ(SelectMethod(VolumeKind::kEraStack, false), Method::kEra);
  EXPECT_EQ(SelectMethod(VolumeKind::kOther, false), Method::kHash);
  EXPECT_EQ(SelectMethod(VolumeKind::kLvmThin, true), Method::kExternal);
}

TEST(CowTableMethodTest, MissingCowDeviceIsLost) {
  absl::StatusOr<ChangedSet> s =
      ComputeCowTable("/nonexistent/vg-snap-cow", 1 << 20);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->lost);
  EXPECT_NE(s->lost_reason.find("missing"), std::string::npos);
}

TEST(CowTableMethodTest, FixtureThroughTheLinuxReader) {
  absl::StatusOr<ChangedSet> s =
      ComputeCowTable("tests/cbt/fixtures/cow_store.bin", 64 << 20);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->lost) << s->lost_reason;
  EXPECT_EQ(s->changed, (ExtentSet{{8192, 4096}, {1 << 20, 4096}}));
  EXPECT_EQ(s->granularity_bytes, 4096u);
}

TEST(CowTableMethodTest, CorruptStoreIsLostWithReason) {
  // The fixture with its magic destroyed, through a real file.
  std::string img;
  {
    std::ifstream in("tests/cbt/fixtures/cow_store.bin", std::ios::binary);
    img.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_FALSE(img.empty());
  img[0] = 'X';
  const std::string path = TempLockPath() + ".cow";
  std::ofstream(path, std::ios::binary) << img;
  absl::StatusOr<ChangedSet> s = ComputeCowTable(path, 64 << 20);
  std::remove(path.c_str());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->lost);
  EXPECT_NE(s->lost_reason.find("magic"), std::string::npos) << s->lost_reason;
}

}  // namespace
}  // namespace cbtd::cbt

namespace cbtd::cbt {
namespace {

// --- thin-delta / cow-table by LVM names: loss cases ----------------------

std::string LvsJson(const std::string& lv, const std::string& extra) {
  return R"({"report": [{"lv": [{"vg_name":"vg", "lv_name":")" + lv +
         R"(", "lv_size":"1048576", )" + extra + "}]}]}";
}

TEST(LvmMethodsTest, ThinMissingBaseIsLost) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  run.On(
      "lvs --reportformat json --units b --nosuffix -o "
      "vg_name,lv_name,segtype,pool_lv,origin,lv_attr,lv_size,thin_id vg/data",
      LvsJson("data", R"("pool_lv":"pool", "thin_id":"1")"));
  run.On(
      "lvs --reportformat json --units b --nosuffix -o "
      "vg_name,lv_name,segtype,pool_lv,origin,lv_attr,lv_size,thin_id vg/old",
      absl::InternalError("Failed to find logical volume \"vg/old\""));
  absl::StatusOr<ChangedSet> s =
      ThinDeltaBetweenLvs(run, dm, "vg/data", "vg/old", "vg/new", "/tmp");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->lost);
  EXPECT_NE(s->lost_reason.find("vg/old is missing"), std::string::npos);
  EXPECT_EQ(s->changed, (ExtentSet{{0, 1048576}}));
  for (const std::string& c : run.calls) {
    EXPECT_EQ(c.find("reserve_metadata_snap"), std::string::npos);
  }
}

TEST(LvmMethodsTest, ThinSnapshotsOfDifferentPoolsAreLost) {
  FakeRunner run;
  FakeDeviceMapper dm(run.calls);
  const std::string q =
      "lvs --reportformat json --units b --nosuffix -o "
      "vg_name,lv_name,segtype,pool_lv,origin,lv_attr,lv_size,thin_id ";
  run.On(q + "vg/data", LvsJson("data", R"("pool_lv":"p1", "thin_id":"1")"));
  run.On(q + "vg/old", LvsJson("old", R"("pool_lv":"p1", "thin_id":"2")"));
  run.On(q + "vg/new", LvsJson("new", R"("pool_lv":"p2", "thin_id":"3")"));
  absl::StatusOr<ChangedSet> s =
      ThinDeltaBetweenLvs(run, dm, "vg/data", "vg/old", "vg/new", "/tmp");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->lost);
  EXPECT_NE(s->lost_reason.find("one pool"), std::string::npos);
}

TEST(LvmMethodsTest, CowBaseOfAnotherOriginIsLost) {
  FakeRunner run;
  const std::string q =
      "lvs --reportformat json --units b --nosuffix -o "
      "vg_name,lv_name,segtype,pool_lv,origin,lv_attr,lv_size,thin_id ";
  run.On(q + "vg/data", LvsJson("data", R"("origin":"")"));
  run.On(q + "vg/snap", LvsJson("snap", R"("origin":"other")"));
  absl::StatusOr<ChangedSet> s = CowTableOfLv(run, "vg/data", "vg/snap");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->lost);
  EXPECT_NE(s->lost_reason.find("not a snapshot of vg/data"),
            std::string::npos);
}

}  // namespace
}  // namespace cbtd::cbt
