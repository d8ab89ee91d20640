// CbtChangeTracker's decisions: which method, when the chain holds, and the
// whole-volume hash fallback (never a partial set) whenever it does not.
// The thin-delta and cow-table answers themselves are tested in tests/cbt
// and, on real LVM, by tests/vm/cases/agent_daemon.sh.
#include "agent/cbt_change_tracker.h"

#include "cbt/era_stack.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/cbt/fake_device_mapper.h"
#include "tests/cbt/fake_runner.h"
#include "tests/common/temp_dir.h"
#include "tests/snapshot/fakes.h"

namespace cbtd::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::NiceMock;
using ::testing::Return;

constexpr uint64_t kSize = 64 << 20;
constexpr char kLvs[] =
    "lvs --reportformat json --units b --nosuffix -o "
    "vg_name,lv_name,segtype,pool_lv,origin,lv_attr,lv_size,thin_id ";

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest() : tracker_(run_, cbt_dm_, lvm_, dm_, host_, "/tmp") {
    snapshot::LvReport& pool = lvm_.Add("pool", "thin-pool");
    pool.data_percent = 10;
    AddLv("data", "thin", 4);
    AddLv("raw", "linear", 5);
    volume_.name = "data";
    volume_.path = "/dev/vg/data";
    snap_ = {"data", "vg/data.cbtd-2", "/dev/mapper/vg-data.cbtd--2"};
  }

  void AddLv(const std::string& name, const std::string& segtype, int minor) {
    snapshot::LvReport& lv = lvm_.Add(name, segtype);
    lv.uuid = "uuid-" + name;
    if (segtype == "thin") {
      lv.pool_lv = "pool";
      lv.thin_id = 1;
    }
    lv.size_bytes = kSize;
    lv.kernel_major = 253;
    lv.kernel_minor = minor;
    lv.active = true;
    ON_CALL(host_, StatBlockDevice("/dev/vg/" + name))
        .WillByDefault(
            Return(snapshot::BlockDeviceId{253, uint32_t(minor), kSize}));
    snapshot::DmInfo info;
    info.name = "vg-" + name;
    info.uuid = "LVM-" + std::string(64, 'x');
    ON_CALL(dm_, InfoByDevice(253, uint32_t(minor)))
        .WillByDefault(Return(std::optional<snapshot::DmInfo>(info)));
  }

  // A committed record of `data` as the tracker itself would have left it.
  TrackingRecord Base(const std::string& tracks,
                      const std::string& uuid = "uuid-data") {
    TrackingRecord r;
    r.volume = "data";
    r.method = tracks;
    r.base_snapshot = "vg/data.cbtd-1";
    r.base_version = "v1";
    r.state_blob = R"({"uuid":")" + uuid + R"(","size":67108864,"tracks":")" +
                   tracks + R"("})";
    return r;
  }

  absl::StatusOr<ChangedSet> Compute(const std::optional<TrackingRecord>& base,
                                     bool full = false) {
    return tracker_.ComputeChanges(volume_, base, snap_, full);
  }

  static void ExpectWholeVolume(const ChangedSet& c) {
    EXPECT_EQ(c.extents, (cbt::ExtentSet{{0, kSize}}));
    EXPECT_EQ(c.volume_bytes, kSize);
  }

  cbt::FakeRunner run_;
  cbt::FakeDeviceMapper cbt_dm_{run_.calls};
  snapshot::FakeLvm lvm_;
  NiceMock<snapshot::MockDeviceMapper> dm_;
  NiceMock<snapshot::MockHost> host_;
  CbtChangeTracker tracker_;
  VolumeConfig volume_;
  SnapshotRef snap_;
};

TEST_F(TrackerTest, FirstRunIsAFullReadThatAnchorsTheKindsMethod) {
  absl::StatusOr<ChangedSet> c = Compute(std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->full);
  EXPECT_EQ(c->method, "thin-delta");
  EXPECT_EQ(c->fallback_reason, "");
  // The pool's map of the new snapshot is not scripted: read everything.
  ExpectWholeVolume(*c);
  EXPECT_TRUE(c->zeroed.empty());
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("tracks":"thin-delta")"));
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("uuid":"uuid-data")"));
  EXPECT_TRUE(c->keep_snapshot) << "thin-delta's next run needs this base";
}

// A thin full reads only the blocks the pool has mapped for the new
// snapshot; the rest is sent as zeros. The same for the hash method's
// whole-volume compare.
TEST_F(TrackerTest, AThinFullReadsOnlyTheMappedBlocks) {
  run_.On(std::string(kLvs) + "vg/data.cbtd-2",
          R"({"report":[{"lv":[{"vg_name":"vg","lv_name":"data.cbtd-2",)"
          R"("segtype":"thin","lv_size":"67108864","pool_lv":"pool",)"
          R"("thin_id":"6"}]}]})");
  cbt_dm_.On("dmsetup status",
             std::string("0 409600 thin-pool 3 20/1024 30/3200 - rw "
                         "discard_passdown queue_if_no_space - 1024\n"));
  cbt_dm_.On("dmsetup message", std::string());
  run_.On("thin_dump",
          std::string("<superblock data_block_size=\"128\"><device "
                      "dev_id=\"6\"><range_mapping origin_begin=\"16\" "
                      "data_begin=\"0\" length=\"32\" time=\"0\"/>"
                      "</device></superblock>"));
  const cbt::ExtentSet mapped{{1 << 20, 2 << 20}};
  cbt::ExtentSet unmapped{{0, kSize}};
  unmapped.Remove(mapped);
  for (bool full : {true, false}) {
    absl::StatusOr<ChangedSet> c =
        full ? Compute(std::nullopt) : Compute(Base("hash"));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->method, full ? "thin-delta" : "hash");
    EXPECT_EQ(c->extents, mapped);
    EXPECT_EQ(c->zeroed, unmapped);
    EXPECT_THAT(run_.calls,
                ::testing::Contains("thin_dump --metadata-snap --dev-id 6 "
                                    "/dev/mapper/vg-pool_tmeta"));
    EXPECT_EQ(run_.calls.back(),
              "dmsetup message vg-pool-tpool 0 release_metadata_snap");
  }
}

TEST_F(TrackerTest, FullIsAFullReadEvenWithABase) {
  absl::StatusOr<ChangedSet> c = Compute(Base("thin-delta"), /*full=*/true);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->full);
  ExpectWholeVolume(*c);
}

TEST_F(TrackerTest, MissingBaseSnapshotFallsBackToHashOverTheWholeVolume) {
  run_.On(std::string(kLvs) + "vg/data",
          R"({"report":[{"lv":[{"vg_name":"vg","lv_name":"data",)"
          R"("lv_size":"67108864","pool_lv":"pool","thin_id":"1"}]}]})");
  run_.On(std::string(kLvs) + "vg/data.cbtd-1",
          absl::InternalError("Failed to find logical volume"));
  absl::StatusOr<ChangedSet> c = Compute(Base("thin-delta"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->full) << "the base version still anchors a hash compare";
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("thin-delta tracking lost"));
  EXPECT_THAT(c->fallback_reason, HasSubstr("vg/data.cbtd-1 is missing"));
  ExpectWholeVolume(*c);
  // The new snapshot anchors thin-delta again next time.
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("tracks":"thin-delta")"));
  EXPECT_TRUE(c->keep_snapshot);
}

// hash compares with the receiver's index: no base snapshot to keep, so
// none slows the volume's writes between runs. Also when era falls back to
// hash on a volume that is not an era device.
TEST_F(TrackerTest, HashKeepsNoBaseSnapshot) {
  for (TrackingMethod m : {TrackingMethod::kHash, TrackingMethod::kEra}) {
    volume_.method = m;
    absl::StatusOr<ChangedSet> first = Compute(std::nullopt);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->method, "hash");
    EXPECT_FALSE(first->keep_snapshot);
    TrackingRecord base = Base("hash");
    base.base_snapshot.clear();  // as such a run commits it
    absl::StatusOr<ChangedSet> next = Compute(base);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_FALSE(next->full) << "the base version anchors the compare";
    EXPECT_EQ(next->fallback_reason.find("base snapshot"), std::string::npos)
        << next->fallback_reason;
    EXPECT_FALSE(next->keep_snapshot);
    ExpectWholeVolume(*next);
  }
}

TEST_F(TrackerTest, RecreatedVolumeLosesItsChain) {
  absl::StatusOr<ChangedSet> c = Compute(Base("thin-delta", "uuid-old"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("re-created"));
  ExpectWholeVolume(*c);
  for (const std::string& call : run_.calls) {
    EXPECT_THAT(call, ::testing::Not(HasSubstr("thin_delta")));
  }
}

TEST_F(TrackerTest, RolledBackVolumeComparesEveryChunkOnce) {
  TrackingRecord base = Base("thin-delta");
  base.state_blob =
      R"({"uuid":"uuid-data","size":67108864,"tracks":"thin-delta",)"
      R"("rolled_back_to":"v0"})";
  absl::StatusOr<ChangedSet> c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->full) << "the base version anchors the compare";
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason,
              HasSubstr("rolled back in place to version v0"));
  ExpectWholeVolume(*c);
  EXPECT_EQ(c->next_state_blob.find("rolled_back_to"), std::string::npos)
      << "the next chain starts clean";
}

TEST_F(TrackerTest, ChangedMethodLosesTheChain) {
  absl::StatusOr<ChangedSet> c = Compute(Base("cow-table"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason,
              HasSubstr("method changed from cow-table to thin-delta"));
  ExpectWholeVolume(*c);
}

TEST_F(TrackerTest, UnreadableStateLosesTheChain) {
  TrackingRecord base = Base("thin-delta");
  base.state_blob = "{torn";
  absl::StatusOr<ChangedSet> c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("no volume identity"));
  ExpectWholeVolume(*c);
}

TEST_F(TrackerTest, MethodThatDoesNotFitTheVolumeSaysSoAndHashes) {
  volume_.method = TrackingMethod::kCowTable;
  absl::StatusOr<ChangedSet> c = Compute(Base("hash"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(
      c->fallback_reason,
      HasSubstr(
          "cow-table needs a thick LV or a dm volume; /dev/vg/data is thin"));
  ExpectWholeVolume(*c);
}

TEST_F(TrackerTest, AutoPicksCowTableForAThickLv) {
  volume_.name = "raw";
  volume_.path = "/dev/vg/raw";
  absl::StatusOr<ChangedSet> c = Compute(std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "cow-table");
}

TEST_F(TrackerTest, DmVolumeIsTrackedByItsCowStoreAndLosesAForeignBase) {
  ON_CALL(host_, StatBlockDevice("/dev/mapper/mydisk"))
      .WillByDefault(Return(snapshot::BlockDeviceId{253, 9, kSize}));
  snapshot::DmInfo info;
  info.name = "mydisk";
  info.uuid = "my-own-uuid";
  info.target_types = {"linear"};
  ON_CALL(dm_, InfoByDevice(253, 9u))
      .WillByDefault(Return(std::optional<snapshot::DmInfo>(info)));
  volume_.name = "mydisk";
  volume_.path = "/dev/mapper/mydisk";
  absl::StatusOr<ChangedSet> first = Compute(std::nullopt);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->method, "cow-table");

  TrackingRecord base = Base("cow-table", "my-own-uuid");
  base.base_snapshot = "dm/cbtd-otherdisk-20261122T000000Z";
  absl::StatusOr<ChangedSet> c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("not a cbtd snapshot of mydisk"));
  ExpectWholeVolume(*c);

  base.base_snapshot = "dm/cbtd-mydisk-20261122T000000Z";  // long gone
  c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("is missing"));
  ExpectWholeVolume(*c);
}

// method = external: a list is trusted only when its generation is the
// next_generation the last committed run read; otherwise the whole volume
// is compared, saying why. The next generation is stored either way.
TEST_F(TrackerTest, ExternalListIsTrustedOnlyForTheStoredGeneration) {
  test::TempDir dir;
  volume_.method = TrackingMethod::kExternal;
  volume_.changes_file = dir / "data.json";
  const auto write = [&](const std::string& json) {
    std::ofstream(volume_.changes_file) << json;
  };
  write(R"({"generation": "g0", "next_generation": "g1", "extents": []})");
  absl::StatusOr<ChangedSet> first = Compute(std::nullopt);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->full);
  EXPECT_EQ(first->method, "external");
  EXPECT_FALSE(first->keep_snapshot);
  EXPECT_THAT(first->next_state_blob,
              HasSubstr(R"("external_generation":"g1")"));

  TrackingRecord base = Base("external");
  base.base_snapshot.clear();
  base.state_blob = first->next_state_blob;
  write(R"({"generation": "g1", "next_generation": "g2",
            "extents": [[65536, 4096], [1048576, 131072]]})");
  absl::StatusOr<ChangedSet> next = Compute(base);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->method, "external");
  EXPECT_EQ(next->fallback_reason, "");
  EXPECT_EQ(next->extents, (cbt::ExtentSet{{65536, 4096}, {1048576, 131072}}));
  EXPECT_THAT(next->next_state_blob,
              HasSubstr(R"("external_generation":"g2")"));

  struct Row {
    const char* file;  // nullptr: no file
    const char* reason;
  };
  const Row rows[] = {
      {R"({"generation": "g0", "next_generation": "g9", "extents": []})",
       "generation 'g0' does not match 'g1'"},
      {R"({"generation": "g1", "extents": [[0, 134217728]]})",
       "beyond the volume"},
      {R"({"generation": "g1", "extents": [[0]]})", "is not [offset_bytes"},
      {"not json", "not valid JSON"},
      {nullptr, "cannot read"},
  };
  for (const Row& row : rows) {
    std::filesystem::remove(volume_.changes_file);
    if (row.file != nullptr) write(row.file);
    absl::StatusOr<ChangedSet> c = Compute(base);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->method, "hash") << row.reason;
    EXPECT_THAT(c->fallback_reason, HasSubstr("external list not used"));
    EXPECT_THAT(c->fallback_reason, HasSubstr(row.reason));
    ExpectWholeVolume(*c);
  }
  // A base whose list named no next generation trusts nothing.
  base.state_blob = Base("external").state_blob;
  write(R"({"generation": "", "extents": []})");
  absl::StatusOr<ChangedSet> c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->fallback_reason, HasSubstr("named no next_generation"));
  ExpectWholeVolume(*c);
}

// A list handed in through the control API wins over the file and is
// held to the same rule; with neither, the whole volume is compared.
TEST_F(TrackerTest, HandedInListIsUsedInsteadOfTheFile) {
  test::TempDir dir;
  volume_.method = TrackingMethod::kExternal;
  volume_.changes_file = dir / "data.json";
  std::ofstream(volume_.changes_file)
      << R"({"generation": "g1", "next_generation": "g2", "extents": []})";
  TrackingRecord base = Base("external");
  base.base_snapshot.clear();
  base.state_blob =
      R"({"uuid":"uuid-data","size":67108864,"tracks":"external",)"
      R"("external_generation":"g1"})";
  volume_.handed_changes =
      R"({"generation":"g1","next_generation":"h2","extents":[[0,4096]]})";
  absl::StatusOr<ChangedSet> c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "external");
  EXPECT_EQ(c->extents, (cbt::ExtentSet{{0, 4096}}));
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("external_generation":"h2")"));

  volume_.handed_changes =
      R"({"generation":"g0","next_generation":"h2","extents":[]})";
  c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("generation 'g0' does not match"));

  volume_.handed_changes.clear();
  volume_.changes_file.clear();
  c = Compute(base);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason, HasSubstr("no list was handed in"));
  ExpectWholeVolume(*c);
}

TEST_F(TrackerTest, MissingVolumeIsAnError) {
  volume_.path = "/dev/vg/gone";
  ON_CALL(host_, StatBlockDevice("/dev/vg/gone"))
      .WillByDefault(Return(absl::NotFoundError("stat /dev/vg/gone")));
  EXPECT_FALSE(Compute(std::nullopt).ok());
}

}  // namespace
}  // namespace cbtd::agent

namespace cbtd::agent {
namespace {

constexpr char kGen[] = "00aa11bb22cc33dd";

// An era stack cbtd-era-e (253:7) over LV data (253:4), recorded in a
// registry of its own; the era device's answers are scripted as on a live
// stack at era 7.
class EraTrackerTest : public TrackerTest {
 protected:
  EraTrackerTest() {
    volume_.name = "e";
    volume_.path = "/dev/mapper/cbtd-era-e";
    volume_.method = TrackingMethod::kAuto;
    ON_CALL(host_, StatBlockDevice(volume_.path))
        .WillByDefault(Return(snapshot::BlockDeviceId{253, 7, kSize}));
    snapshot::DmInfo info{
        "cbtd-era-e", std::string("CBTD-ERA-") + kGen, false, {"era"}};
    ON_CALL(dm_, InfoByDevice(253, 7))
        .WillByDefault(Return(std::optional<snapshot::DmInfo>(info)));
    ON_CALL(dm_, Table("cbtd-era-e"))
        .WillByDefault(Return(
            snapshot::DmTable{{0, kSize / 512, "era", "253:8 253:4 128"}}));
    cbt::EraStackSpec spec{"cbtd-era-e", "/dev/vg/data", "/dev/vg/meta", 128,
                           kGen};
    EXPECT_TRUE(cbt::EraStackRegistry(registry_.path()).Save(spec).ok());
    Script(std::string("CBTD-ERA-") + kGen);
    run_.On("era_invalidate",
            std::string(R"(<blocks><range begin="2" end="4"/></blocks>)"));
  }

  void Script(const std::string& uuid) {
    cbt_dm_.On("dmsetup table",
               absl::StrCat("0 ", kSize / 512, " era 253:8 253:4 128\n"));
    cbt_dm_.On("dmsetup info -c", uuid + "\n");
    cbt_dm_.On("dmsetup status",
               absl::StrCat("0 ", kSize / 512, " era 8 30/4096 7 -\n"));
    cbt_dm_.On("dmsetup message", std::string());
  }

  TrackingRecord EraBase(const std::string& generation, uint64_t since) {
    TrackingRecord r;
    r.volume = "e";
    r.method = "era";
    r.base_version = "v1";
    r.state_blob =
        absl::StrCat(R"({"uuid":"CBTD-ERA-)", generation, R"(","size":)", kSize,
                     R"(,"tracks":"era","since_era":)", since,
                     R"(,"era_generation":")", generation, R"("})");
    return r;
  }

  absl::StatusOr<ChangedSet> Compute(const std::optional<TrackingRecord>& base,
                                     bool full = false) {
    return era_tracker_.ComputeChanges(volume_, base, snap_, full);
  }

  test::TempDir registry_;
  CbtChangeTracker era_tracker_{run_,   cbt_dm_,         lvm_, dm_, host_,
                                "/tmp", registry_.path()};
};

TEST_F(EraTrackerTest, FirstRunCheckpointsAndAnchorsTheNextRun) {
  absl::StatusOr<ChangedSet> c = Compute(std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->full);
  EXPECT_EQ(c->method, "era");
  EXPECT_FALSE(c->keep_snapshot) << "era needs no base snapshot";
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("since_era":6)"));
  EXPECT_THAT(c->next_state_blob,
              HasSubstr(absl::StrCat(R"("era_generation":")", kGen, "\"")));
  EXPECT_THAT(run_.calls, ::testing::Contains("dmsetup message cbtd-era-e 0 "
                                              "checkpoint"));
}

TEST_F(EraTrackerTest, IncrementalReadsWhatWasWrittenSinceTheStoredEra) {
  absl::StatusOr<ChangedSet> c = Compute(EraBase(kGen, 5));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->full);
  EXPECT_EQ(c->method, "era");
  EXPECT_EQ(c->fallback_reason, "");
  EXPECT_EQ(c->extents, (cbt::ExtentSet{{2 * 65536, 2 * 65536}}));
  EXPECT_THAT(run_.calls,
              ::testing::Contains(
                  "era_invalidate --metadata-snapshot --written-since 5 "
                  "/dev/vg/meta"));
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("since_era":6)"));
}

TEST_F(EraTrackerTest, RebuiltStackFallsBackToHashSayingWhy) {
  Script("CBTD-ERA-ffff000011112222");
  absl::StatusOr<ChangedSet> c = Compute(EraBase(kGen, 5));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->full) << "the base version anchors a hash compare";
  EXPECT_EQ(c->method, "hash");
  EXPECT_THAT(c->fallback_reason,
              HasSubstr("era tracking lost: era stack cbtd-era-e was "
                        "rebuilt: its generation is ffff000011112222"));
  ExpectWholeVolume(*c);
  // The next run trusts the new stack, from this run's checkpoint.
  EXPECT_THAT(c->next_state_blob,
              HasSubstr(R"("era_generation":"ffff000011112222")"));
  EXPECT_THAT(c->next_state_blob, HasSubstr(R"("since_era":6)"));
}

TEST_F(EraTrackerTest, AnUnrecordedEraDeviceIsAnErrorThatSaysWhatToDo) {
  std::filesystem::remove_all(registry_.path());
  absl::StatusOr<ChangedSet> c = Compute(EraBase(kGen, 5));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), HasSubstr("cbtctl era-stack create"));
}

}  // namespace
}  // namespace cbtd::agent
