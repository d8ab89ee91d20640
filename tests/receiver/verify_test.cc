// verify: what it reports for unknown names (not found, never success and
// never damage) and that it names every damaged chunk of a version.
#include "receiver/verify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "receiver/vault_restore.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using restore::OpenRestoreTarget;
using ::testing::HasSubstr;
using testing::VaultFixture;

class VerifyTest : public VaultFixture {
 protected:
  void SetUp() override {
    VaultFixture::SetUp();
    vol_ = RandomVolume(12 * kChunk, 3);
    ASSERT_TRUE(Receive(Produce(vol_, nullptr, {}, "v1")).ok());
  }

  std::string vol_;
};

// Fault 4 of issue 13: `verify --host TYPO --volume V` said "0 damaged" and
// exited 0; `--version NOSUCH` reported damage. Both are NOT_FOUND.
TEST_F(VerifyTest, UnknownHostVolumeOrVersionIsNotFound) {
  VerifyScope typo;
  typo.volume = VolumeName{"hots1", "vol1"};
  auto r = VerifyVault(*vault_, typo);
  ASSERT_FALSE(r.ok()) << "an unknown host verified as sound";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("hots1/vol1"));

  VerifyScope no_volume;
  no_volume.volume = VolumeName{"host1", "nosuch"};
  r = VerifyVault(*vault_, no_volume);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();

  VerifyScope no_version;
  no_version.volume = kVol;
  no_version.version = "NOSUCH";
  r = VerifyVault(*vault_, no_version);
  ASSERT_FALSE(r.ok()) << "an unknown version was reported as "
                       << (r.ok() && !r->ok() ? "damaged" : "sound");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("NOSUCH"));

  // The known names still verify.
  no_version.version = "v1";
  r = VerifyVault(*vault_, no_version);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->versions_checked, 1u);
}

// Also from issue 13: verify stopped at the first damaged chunk of a
// version, hiding the rest. Every damaged chunk is reported, with the
// positions that use it.
TEST_F(VerifyTest, ReportsEveryDamagedChunkOfAVersion) {
  const VersionIndex idx = Index("v1");
  std::vector<uint64_t> data_chunks;
  for (uint64_t i = 0; i < idx.entries.size(); ++i) {
    if (!transport::IsZeroEntry(idx.entries[i])) data_chunks.push_back(i);
  }
  ASSERT_GE(data_chunks.size(), 5u);
  const std::vector<uint64_t> bad = {data_chunks[1], data_chunks[4]};
  for (uint64_t i : bad) DamageChunk(idx.entries[i]);
  // And one missing.
  const uint64_t gone = data_chunks[2];
  LoseChunk(idx.entries[gone]);

  VerifyScope all;
  auto r = VerifyVault(*vault_, all);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->damaged.size(), 1u);
  const DamagedVersion& d = r->damaged[0];
  EXPECT_EQ(d.version, "v1");
  ASSERT_EQ(d.chunks.size(), 3u) << "verify did not report every bad chunk";
  std::vector<uint64_t> positions;
  for (const auto& c : d.chunks) {
    positions.push_back(c.chunk_index);
    EXPECT_EQ(c.hash, idx.entries[c.chunk_index]);
    EXPECT_EQ(c.missing, c.chunk_index == gone);
    EXPECT_THAT(c.reason, HasSubstr(c.hash.ToHex()));
  }
  std::vector<uint64_t> want = {bad[0], bad[1], gone};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(positions, want);  // ascending
}

using RestoreTest = VerifyTest;

// Also from issue 13: `restore --version NOSUCH` left an empty target
// file. A restore that fails leaves no file it created behind.
TEST_F(RestoreTest, FailedRestoreLeavesNoNewTargetFile) {
  const std::string path = dir_ + "/target";
  {
    auto target = OpenRestoreTarget(path);
    ASSERT_TRUE(target.ok()) << target.status();
    auto stats = RestoreVersion(*vault_, kVol, "NOSUCH", **target, {});
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(stats.status().code(), absl::StatusCode::kNotFound);
  }
  EXPECT_FALSE(std::filesystem::exists(path))
      << "a failed restore left an empty target file";
  // A damaged chunk fails the restore mid-way: the new file goes too.
  const VersionIndex idx = Index("v1");
  DamageChunk(idx.entries[5]);
  {
    auto target = OpenRestoreTarget(path);
    ASSERT_TRUE(target.ok()) << target.status();
    EXPECT_FALSE(RestoreVersion(*vault_, kVol, "v1", **target, {}).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  // A file that existed before is left in place (a restore never deletes
  // what it did not create).
  { std::ofstream(path) << "keep me"; }
  {
    auto target = OpenRestoreTarget(path);
    ASSERT_TRUE(target.ok()) << target.status();
    EXPECT_FALSE(RestoreVersion(*vault_, kVol, "NOSUCH", **target, {}).ok());
  }
  EXPECT_EQ(ReadWholeFile(path), "keep me");
}

}  // namespace
}  // namespace cbtd::receiver
