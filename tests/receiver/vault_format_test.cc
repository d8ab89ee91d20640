// Which format a vault directory holds, and what each allows: a new vault
// is format 2; a first-format vault is read (restore, verify) but never
// written by a receive, and `migrate` copies it into a format-2 vault with
// every version checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "receiver/local_object_store.h"
#include "receiver/local_vault.h"
#include "receiver/migrate.h"
#include "receiver/verify.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using ::testing::HasSubstr;
using testing::VaultFixture;

class VaultFormatTest : public VaultFixture {
 protected:
  // v1 (protected) and v2 of kVol in the fixture's format-2 vault.
  void MakeVersions() {
    v1_ = RandomVolume(16 * kChunk, 21);
    ASSERT_TRUE(Receive(Produce(v1_, nullptr, {}, "v1")).ok());
    v2_ = v1_;
    cbt::ExtentSet changed;
    Scribble(v2_, changed, 4, 22);
    const VersionIndex base = Index("v1");
    ASSERT_TRUE(Receive(Produce(v2_, &base, changed, "v2")).ok());
    ASSERT_TRUE(vault_->SetProtected(kVol, "v1", true).ok());
  }

  // Migrates a first-format copy of the versions whose object `key` has one
  // bit flipped at `offset` (from the start, or from the end if negative):
  // the migrate fails with DATA_LOSS naming `named`, and copies no version.
  void ExpectMigrateRefusesDamage(const std::string& key, long offset,
                                  const std::string& named) {
    const std::string old_dir = dir_ + "/old";
    const std::string path = old_dir + "/" + key;
    std::string obj = ReadWholeFile(path);
    obj[offset >= 0 ? offset : static_cast<long>(obj.size()) + offset] ^= 0x01;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << obj;
    auto old = OpenLocalVault(old_dir, false);
    auto fresh = OpenLocalVault(dir_ + "/new", true);
    ASSERT_TRUE(old.ok() && fresh.ok());
    auto r = MigrateVault(*old->vault, *fresh->vault);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(named));
    auto copied = fresh->vault->ListVersions(kVol);
    ASSERT_TRUE(copied.ok());
    EXPECT_TRUE(copied->empty())
        << "a version with damage in " << key << " was copied";
  }

  // A first-format copy (VaultFixture::WriteFormat1Copy) of v1 and v2,
  // with v1 protected.
  void WriteFormat1Copy(const std::string& dir) {
    VaultFixture::WriteFormat1Copy(dir, {"v1", "v2"});
    auto store = LocalObjectStore::Open(dir, false);
    ASSERT_TRUE(store.ok()) << store.status();
    Vault old(**store, nullptr);
    ASSERT_TRUE(old.SetProtected(kVol, "v1", true).ok());
  }

  std::string v1_, v2_;
};

TEST_F(VaultFormatTest, NewVaultIsFormat2) {
  EXPECT_EQ(vault_->format(), 2);
  EXPECT_EQ(ReadWholeFile(dir_ + "/vault/format"), "cbtd-vault 2\n");
  EXPECT_TRUE(std::filesystem::exists(LocalChunkIndexPath(dir_ + "/vault")));
  // Opening it again keeps it.
  auto again = OpenLocalVault(dir_ + "/vault", false);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->vault->format(), 2);
}

TEST_F(VaultFormatTest, EmptyDirectoryIsNotAVaultWithoutCreate) {
  std::filesystem::create_directories(dir_ + "/empty");
  auto v = OpenLocalVault(dir_ + "/empty", false);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(absl::IsNotFound(v.status())) << v.status();
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("--create"));
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/empty"));
}

TEST_F(VaultFormatTest, UnknownFormatIsRefusedNotGuessed) {
  std::filesystem::create_directories(dir_ + "/future");
  std::ofstream(dir_ + "/future/format") << "cbtd-vault 9\n";
  auto v = OpenLocalVault(dir_ + "/future", true);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(v.status())) << v.status();
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("cbtd-vault 9"));
}

TEST_F(VaultFormatTest, LostChunkIndexIsDamageNotAnEmptyVault) {
  MakeVersions();
  local_ = OpenedVault{};
  std::filesystem::remove(LocalChunkIndexPath(dir_ + "/vault"));
  auto v = OpenLocalVault(dir_ + "/vault", true);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(absl::IsDataLoss(v.status())) << v.status();
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("chunks.sqlite"));
  EXPECT_FALSE(std::filesystem::exists(LocalChunkIndexPath(dir_ + "/vault")))
      << "an empty index was created in its place";
}

TEST_F(VaultFormatTest, FirstFormatVaultIsReadButNotWritten) {
  MakeVersions();
  const std::string old_dir = dir_ + "/old";
  WriteFormat1Copy(old_dir);
  auto old = OpenLocalVault(old_dir, false);
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_EQ(old->vault->format(), 1);
  auto report = VerifyVault(*old->vault, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->versions_checked, 2u);
  // A receive is refused, naming the way out, and writes nothing.
  Produce(v2_, nullptr, {}, "v3");
  auto session = ReceiveSession::Open(*old->vault, records_[0].header());
  ASSERT_FALSE(session.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(session.status()));
  EXPECT_THAT(std::string(session.status().message()), HasSubstr("migrate"));
  auto versions = old->vault->ListVersions(kVol);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(*versions, (std::vector<std::string>{"v1", "v2"}));
}

TEST_F(VaultFormatTest, MigrateCopiesEveryVersionAndIsRerunnable) {
  MakeVersions();
  const std::string old_dir = dir_ + "/old";
  WriteFormat1Copy(old_dir);
  auto old = OpenLocalVault(old_dir, false);
  ASSERT_TRUE(old.ok());
  auto fresh = OpenLocalVault(dir_ + "/new", true);
  ASSERT_TRUE(fresh.ok());
  auto r = MigrateVault(*old->vault, *fresh->vault);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->versions_copied, 2u);
  EXPECT_GT(r->chunks_copied, 0u);
  // The copy restores byte-equal, verifies, keeps the protection.
  local_ = *std::move(fresh);
  store_ = local_.store.get();
  vault_ = local_.vault.get();
  EXPECT_TRUE(RestoresTo("v1", v1_));
  EXPECT_TRUE(RestoresTo("v2", v2_));
  auto prot = vault_->IsProtected(kVol, "v1");
  ASSERT_TRUE(prot.ok());
  EXPECT_TRUE(*prot);
  auto report = VerifyVault(*vault_, {});
  ASSERT_TRUE(report.ok() && report->ok());
  // Run again: everything is already there, nothing is copied twice.
  r = MigrateVault(*old->vault, *vault_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->versions_already_there, 2u);
  EXPECT_EQ(r->chunks_copied, 0u);
}

TEST_F(VaultFormatTest, MigrateRefusesADamagedSourceChunk) {
  MakeVersions();
  WriteFormat1Copy(dir_ + "/old");
  const ChunkHash victim = Index("v1").entries[0];
  const std::string key = Vault::ChunkKey(victim);
  const long middle =
      static_cast<long>(ReadWholeFile(dir_ + "/old/" + key).size() / 2);
  ExpectMigrateRefusesDamage(key, middle, victim.ToHex());
}

// The source index is read as it is copied (in bounded memory): damage
// found only at its end (its trailing checksum) publishes nothing, though
// every chunk it names was copied by then.
TEST_F(VaultFormatTest, MigrateRefusesADamagedSourceIndex) {
  MakeVersions();
  WriteFormat1Copy(dir_ + "/old");
  ExpectMigrateRefusesDamage(Vault::IndexKey(kVol, "v1"), -1, "v1");
}

}  // namespace
}  // namespace cbtd::receiver
