// The era stack registry and the create / assemble rules, against a
// scripted device-mapper and files standing in for the origin and metadata.
// The real stack (and its generation surviving remove + assemble) is
// vm.cbt_era.
#include "cbt/era_stack.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/cbt/fake_device_mapper.h"
#include "tests/common/temp_dir.h"

namespace cbtd::cbt {
namespace {

class EraStackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = dir_ + "/origin";
    meta_ = dir_ + "/meta";
    Fill(origin_, 1 << 20, 'o');
    Fill(meta_, 64 << 10, 'm');  // an earlier stack's metadata
  }

  static void Fill(const std::string& path, size_t n, char c) {
    std::ofstream(path) << std::string(n, c);
  }
  EraStackSpec Spec() const {
    EraStackSpec s;
    s.name = "cbtd-era-x";
    s.origin_path = origin_;
    s.metadata_path = meta_;
    return s;
  }
  EraStackRegistry Registry() const { return EraStackRegistry(dir_ + "/reg"); }
  // device-mapper as on a host where cbtd-era-x does not exist yet.
  static void NoDevice(FakeDeviceMapper& dm) {
    dm.On(kUuidOf, absl::NotFoundError("no such device"));
    dm.On("dmsetup create", std::string());
  }
  static constexpr char kUuidOf[] =
      "dmsetup info -c --noheadings -o uuid cbtd-era-x";
  std::vector<std::string> calls_;
  const test::TempDir tmp_{"cbt-era-stack."};
  const std::string dir_ = tmp_.path();
  std::string origin_, meta_;
};

TEST_F(EraStackTest, CreateFormatsLoadsWithGenerationAndRecords) {
  FakeDeviceMapper dm(calls_);
  NoDevice(dm);
  absl::StatusOr<EraStackSpec> made =
      CreateEraStack(dm, Registry(), Spec(), /*replace=*/false);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->generation.size(), 16u);
  EXPECT_EQ(calls_.back(), "dmsetup create cbtd-era-x --uuid CBTD-ERA-" +
                               made->generation + " --table 0 2048 era " +
                               meta_ + " " + origin_ + " 128");
  absl::StatusOr<bool> blank = SuperblockIsBlank(meta_);
  ASSERT_TRUE(blank.ok());
  EXPECT_TRUE(*blank) << "create must hand dm-era blank metadata";
  auto found = Registry().Find("cbtd-era-x");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, *made);
}

TEST_F(EraStackTest, CreateRefusesARecordedStackUnlessReplacing) {
  FakeDeviceMapper dm(calls_);
  NoDevice(dm);
  auto first = CreateEraStack(dm, Registry(), Spec(), false);
  ASSERT_TRUE(first.ok()) << first.status();
  Fill(meta_, 64 << 10, 'm');  // dm-era wrote its metadata
  auto again = CreateEraStack(dm, Registry(), Spec(), false);
  ASSERT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("--force"), std::string::npos);
  EXPECT_FALSE(*SuperblockIsBlank(meta_)) << "a refused create zeroed metadata";
  EXPECT_EQ(**Registry().Find("cbtd-era-x"), *first);

  auto replaced = CreateEraStack(dm, Registry(), Spec(), true);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_NE(replaced->generation, first->generation);
  EXPECT_EQ((*Registry().Find("cbtd-era-x"))->generation, replaced->generation);
}

TEST_F(EraStackTest, CreateRefusesALiveDeviceAndForgetsAFailedLoad) {
  FakeDeviceMapper live(calls_);
  live.On(kUuidOf, std::string("LVM-someone-else\n"));
  auto refused = CreateEraStack(live, Registry(), Spec(), true);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(*SuperblockIsBlank(meta_));

  FakeDeviceMapper failing(calls_);
  failing.On(kUuidOf, absl::NotFoundError("no device"));
  failing.On("dmsetup create", absl::InternalError("ioctl failed"));
  auto failed = CreateEraStack(failing, Registry(), Spec(), false);
  EXPECT_FALSE(failed.ok());
  auto found = Registry().Find("cbtd-era-x");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value()) << "a stack that never loaded is recorded";
}

TEST_F(EraStackTest, AssembleKeepsTheRecordedGeneration) {
  EraStackSpec s = Spec();
  s.generation = "0123456789abcdef";
  FakeDeviceMapper dm(calls_);
  NoDevice(dm);
  ASSERT_TRUE(AssembleEraStack(dm, s).ok());
  EXPECT_EQ(calls_.back(),
            "dmsetup create cbtd-era-x --uuid CBTD-ERA-0123456789abcdef "
            "--table 0 2048 era " +
                meta_ + " " + origin_ + " 128");
}

TEST_F(EraStackTest, AssembleRefusesBlankMetadata) {
  Fill(meta_, 64 << 10, '\0');
  EraStackSpec s = Spec();
  s.generation = "0123456789abcdef";
  FakeDeviceMapper dm(calls_);
  NoDevice(dm);
  absl::Status st = AssembleEraStack(dm, s);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("is blank"), std::string::npos) << st;
  for (const std::string& c : calls_) {
    EXPECT_EQ(c.find("dmsetup create"), std::string::npos) << c;
  }
}

TEST_F(EraStackTest, AssembleOverALiveStack) {
  EraStackSpec s = Spec();
  s.generation = "0123456789abcdef";
  FakeDeviceMapper same(calls_);
  same.On("dmsetup info -c", std::string("CBTD-ERA-0123456789abcdef\n"));
  EXPECT_EQ(AssembleEraStack(same, s).code(), absl::StatusCode::kAlreadyExists);

  FakeDeviceMapper other(calls_);
  other.On("dmsetup info -c", std::string("\n"));
  absl::Status st = AssembleEraStack(other, s);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("remove it first"), std::string::npos) << st;
}

TEST_F(EraStackTest, RemovingABusyStackSaysWhatToDo) {
  FakeDeviceMapper dm(calls_);
  dm.On("dmsetup remove",
        absl::FailedPreconditionError(
            "device-mapper: remove cbtd-era-x failed: the device is in use"));
  absl::Status st = RemoveEraStack(dm, "cbtd-era-x");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("unmount or close /dev/mapper/cbtd-era-x"),
            std::string::npos)
      << st;
  EXPECT_EQ(calls_, (std::vector<std::string>{"dmsetup remove cbtd-era-x"}));
}

TEST_F(EraStackTest, LiveGenerationOfAMissingStackSaysHowToAssembleIt) {
  FakeDeviceMapper dm(calls_);
  dm.On(kUuidOf, absl::NotFoundError("no such device"));
  absl::StatusOr<std::string> live = LiveEraGeneration(dm, "cbtd-era-x");
  ASSERT_EQ(live.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(live.status().message().find("cbtctl era-stack assemble"),
            std::string::npos)
      << live.status();
}

TEST_F(EraStackTest, RegistryListsRecordsAndNamesADamagedOne) {
  EraStackRegistry reg = Registry();
  auto none = reg.List();
  ASSERT_TRUE(none.ok()) << none.status();  // no directory yet
  EXPECT_TRUE(none->empty());
  EraStackSpec b = Spec();
  b.name = "b";
  b.generation = "1111111111111111";
  EraStackSpec a = b;
  a.name = "a";
  a.generation = "2222222222222222";
  ASSERT_TRUE(reg.Save(b).ok());
  ASSERT_TRUE(reg.Save(a).ok());
  auto both = reg.List();
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(*both, (std::vector<EraStackSpec>{a, b}));

  ASSERT_TRUE(reg.Forget("b").ok());
  EXPECT_FALSE(reg.Find("b")->has_value());
  EXPECT_TRUE(reg.Forget("b").ok()) << "forgetting twice is not an error";
  EXPECT_TRUE(EraStackRegistry(dir_ + "/none").Forget("b").ok())
      << "forgetting in a registry that was never written";

  std::ofstream(reg.dir() + "/a.json") << "{\"format\": 1, \"name\": \"a\"";
  auto damaged = reg.List();
  ASSERT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find("a.json is damaged"),
            std::string::npos)
      << damaged.status();
}

TEST_F(EraStackTest, UnsafeNamesAreRefused) {
  EraStackSpec s = Spec();
  s.name = "../etc/passwd";
  s.generation = "1111111111111111";
  EXPECT_EQ(Registry().Save(s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Registry().Find(".hidden").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EraGenerationTest, UuidRoundTrip) {
  EXPECT_EQ(EraGenerationOfUuid(EraStackUuid("abc") + "\n"), "abc");
  EXPECT_EQ(EraGenerationOfUuid("LVM-xyz"), "");
  EXPECT_EQ(EraGenerationOfUuid(""), "");
  EXPECT_NE(NewEraGeneration(), NewEraGeneration());
}

}  // namespace
}  // namespace cbtd::cbt
