// OpenRadosVault (receiver/rados_vault.h) and `cbt-receiver --vault
// rados:POOL/NS` on a real Ceph cluster: the format object, and least
// privilege: a user with read caps only opens a vault to read, and a
// receiver that would write refuses to start, naming the capability.
#include "receiver/rados_vault.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "receiver/local_object_store.h"
#include "receiver/verify.h"
#include "tests/receiver/rados_test_env.h"
#include "tests/receiver/vault_fixture.h"

namespace cbtd::receiver {
namespace {

using testing::FreshTestNamespace;
using ::testing::HasSubstr;
using testing::TestCluster;
using testing::TestRadosOptions;

struct CommandRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandRun Shell(const std::string& command) {
  CommandRun run;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return run;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
    run.output.append(buf.data(), n);
  }
  const int status = ::pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// Adds Ceph user client.<name> with `caps` to the cluster and to its
// keyring (which the cluster's ceph.conf names), once per process.
void AddUser(const std::string& name, const std::string& caps) {
  static std::set<std::string> added;
  if (!added.insert(name).second) return;
  const CommandRun run =
      Shell("timeout 60 ceph -c " + TestCluster().conf_path() +
            " auth get-or-create client." + name + " " + caps + " >> " +
            TestCluster().keyring_path());
  ASSERT_EQ(run.exit_code, 0) << run.output;
}

void AddReader() {
  AddUser("reader", "mon 'allow r' osd 'allow r pool=vault'");
}

class RadosVaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    AddReader();
    AddUser("nolock", "mon 'allow r' osd 'allow rw pool=vault'");
    AddUser("scoped",
            "mon 'allow r' osd 'allow rwx pool=vault namespace=scoped'");
  }
  void SetUp() override { ns_ = FreshTestNamespace(); }

  // A vault in ns_, created by the vault's own user.
  void CreateVault() {
    auto v = OpenRadosVault(TestRadosOptions(ns_), true, true);
    ASSERT_TRUE(v.ok()) << v.status();
  }

  std::string Receiver(const std::string& args, const std::string& user) {
    return std::string(CBTD_RECEIVER_BIN) + " " + args +
           " --vault rados:vault/" + ns_ + " --ceph-conf " +
           TestCluster().conf_path() + " --ceph-user " + user;
  }

  std::string ns_;
};

TEST_F(RadosVaultTest, NoVaultIsNotFoundWithTheHintToCreate) {
  auto v = OpenRadosVault(TestRadosOptions(ns_), false, false);
  ASSERT_FALSE(v.ok());
  EXPECT_TRUE(absl::IsNotFound(v.status())) << v.status();
  EXPECT_THAT(std::string(v.status().message()),
              HasSubstr("namespace " + ns_ + " holds no cbtd vault"));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("--create"));
}

TEST_F(RadosVaultTest, CreatedVaultIsFormat2AndOpensAgain) {
  CreateVault();
  auto again = OpenRadosVault(TestRadosOptions(ns_), false, false);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->vault->format(), 2);
  EXPECT_EQ(*again->store->Get(kFormatKey), kFormat2Line);
  // Creating an existing vault opens it.
  EXPECT_TRUE(OpenRadosVault(TestRadosOptions(ns_), true, true).ok());
}

TEST_F(RadosVaultTest, UnknownFormatIsRefusedNotGuessed) {
  CreateVault();
  auto v = OpenRadosVault(TestRadosOptions(ns_), false, true);
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v->store->Put(kFormatKey, "cbtd-vault 9\n").ok());
  auto future = OpenRadosVault(TestRadosOptions(ns_), true, true);
  EXPECT_TRUE(absl::IsFailedPrecondition(future.status())) << future.status();
  EXPECT_THAT(std::string(future.status().message()),
              HasSubstr("cbtd-vault 9"));
}

// A user with read caps only: reads, but cannot open the vault to write,
// and the error names the cap and the command that grants it.
TEST_F(RadosVaultTest, ReadOnlyUserReadsButCannotOpenToWrite) {
  CreateVault();
  auto read = OpenRadosVault(TestRadosOptions(ns_, "reader"), false, false);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->vault->ListVolumes().ok());
  auto write = OpenRadosVault(TestRadosOptions(ns_, "reader"), false, true);
  ASSERT_FALSE(write.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(write.status())) << write.status();
  EXPECT_THAT(std::string(write.status().message()),
              HasSubstr("client.reader cannot write RADOS pool vault "
                        "namespace " +
                        ns_ + " (EPERM)"));
  EXPECT_THAT(std::string(write.status().message()),
              HasSubstr("`ceph auth caps client.reader mon 'allow r' osd "
                        "'allow rwx pool=vault namespace=" +
                        ns_ + "'`"));
  // The probe left nothing behind.
  auto own = OpenRadosVault(TestRadosOptions(ns_), false, false);
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(*own->store->List(""), std::vector<std::string>{"format"});
}

// 'rw' without 'x' cannot take RADOS locks (class calls): refused at open
// too, not at the first receive's lock.
TEST_F(RadosVaultTest, UserWithoutClassCallsCannotOpenToWrite) {
  CreateVault();
  auto write = OpenRadosVault(TestRadosOptions(ns_, "nolock"), false, true);
  ASSERT_FALSE(write.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(write.status())) << write.status();
  EXPECT_THAT(std::string(write.status().message()),
              HasSubstr("client.nolock cannot take RADOS locks"));
  EXPECT_THAT(std::string(write.status().message()), HasSubstr("allow rwx"));
}

// What a restore-only host does, with read caps only: a version received
// through the vault's own user restores byte-equal and verifies (the
// chunk index's omap is read, nothing written).
class RadosVaultDataTest : public testing::VaultFixture {
 protected:
  static void SetUpTestSuite() { AddReader(); }
};

TEST_F(RadosVaultDataTest, ReadCapsRestoreAndVerify) {
  const std::string vol = RandomVolume(24 * kChunk, 3);
  ASSERT_TRUE(Receive(Produce(vol, nullptr, {}, "v1")).ok());
  const auto before = Listing();
  auto reader = OpenRadosVault(TestRadosOptions(ns_, "reader"), false, false);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const std::string path = dir_ + "/restored";
  auto target = restore::OpenRestoreTarget(path);
  ASSERT_TRUE(target.ok());
  restore::RestoreOptions opts;
  opts.verify = true;
  auto restored = RestoreVersion(*reader->vault, kVol, "v1", **target, opts);
  target->reset();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(ReadWholeFile(path) == vol);
  auto report = VerifyVault(*reader->vault, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->versions_checked, 1u);
  EXPECT_EQ(Listing(), before);
}

// `cbt-receiver migrate --to rados:vault/NS`: a first-format directory
// copied into a new RADOS vault, whose versions then restore byte-equal.
TEST_F(RadosVaultDataTest, MigrateIntoARadosVault) {
  const std::string vol = RandomVolume(24 * kChunk, 4);
  ASSERT_TRUE(Receive(Produce(vol, nullptr, {}, "v1")).ok());
  // A first-format copy of v1: one object per chunk, the same index.
  const std::string old_dir = dir_ + "/old";
  WriteFormat1Copy(old_dir, {"v1"});
  const std::string to = FreshTestNamespace();
  const CommandRun run =
      Shell(std::string(CBTD_RECEIVER_BIN) + " migrate --vault " + old_dir +
            " --to rados:vault/" + to + " --ceph-conf " +
            TestCluster().conf_path() + " --ceph-user cbtd");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("1 versions copied and checked"));
  auto migrated = OpenRadosVault(TestRadosOptions(to), false, false);
  ASSERT_TRUE(migrated.ok()) << migrated.status();
  const std::string path = dir_ + "/migrated";
  auto target = restore::OpenRestoreTarget(path);
  ASSERT_TRUE(target.ok());
  restore::RestoreOptions opts;
  opts.verify = true;
  auto restored = RestoreVersion(*migrated->vault, kVol, "v1", **target, opts);
  target->reset();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(ReadWholeFile(path) == vol);
}

// The command line: serve and receive with the read-only user stop at
// start (exit 3, refused) with the message; versions and verify run.
TEST_F(RadosVaultTest, ReceiverWithReadCapsOnlyFailsAtStartNamingTheCap) {
  CreateVault();
  const CommandRun serve =
      Shell(Receiver("serve --listen 127.0.0.1:0 --insecure", "reader"));
  EXPECT_EQ(serve.exit_code, 3) << serve.output;
  EXPECT_THAT(serve.output,
              HasSubstr("cbt-receiver serve: client.reader cannot write "
                        "RADOS pool vault namespace " +
                        ns_));
  EXPECT_THAT(serve.output, HasSubstr("ceph auth caps client.reader"));
  EXPECT_THAT(serve.output, ::testing::Not(HasSubstr("serving")));
  const CommandRun receive =
      Shell(Receiver("receive --input /dev/null", "reader"));
  EXPECT_EQ(receive.exit_code, 3) << receive.output;
  EXPECT_THAT(receive.output, HasSubstr("client.reader cannot write"));
  const CommandRun versions = Shell(Receiver("versions", "reader"));
  EXPECT_EQ(versions.exit_code, 0) << versions.output;
  const CommandRun verify = Shell(Receiver("verify", "reader"));
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
}

// Caps limited to one namespace (docs/operations.md): the vault there
// opens to write and lists; any other namespace is refused at open.
TEST_F(RadosVaultTest, NamespaceScopedUserWritesItsNamespaceOnly) {
  auto own = OpenRadosVault(TestRadosOptions("scoped", "scoped"), true, true);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_TRUE(own->vault->ListVolumes().ok());
  EXPECT_TRUE(own->store->List("").ok());
  auto other = OpenRadosVault(TestRadosOptions(ns_, "scoped"), true, true);
  EXPECT_TRUE(absl::IsPermissionDenied(other.status())) << other.status();
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr("client.scoped cannot write"));
}

TEST_F(RadosVaultTest, CommandLineSaysWhenThereIsNoVault) {
  const CommandRun versions = Shell(Receiver("versions", "cbtd"));
  EXPECT_EQ(versions.exit_code, 6) << versions.output;
  EXPECT_THAT(versions.output, HasSubstr("holds no cbtd vault"));
  const CommandRun bad =
      Shell(std::string(CBTD_RECEIVER_BIN) + " versions --vault rados:");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("give rados:POOL or rados:POOL/NAMESPACE"));
}

}  // namespace
}  // namespace cbtd::receiver
