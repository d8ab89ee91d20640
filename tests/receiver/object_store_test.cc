#include "receiver/local_object_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace cbtd::receiver {
namespace {

class LocalObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/dev/shm/cbtd-store-test-XXXXXX";
    if (!std::filesystem::is_directory("/dev/shm")) {
      tmpl = (std::filesystem::temp_directory_path() / "cbtd-store-XXXXXX");
    }
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto s = LocalObjectStore::Open(dir_ + "/v", true);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  std::unique_ptr<LocalObjectStore> store_;
};

TEST_F(LocalObjectStoreTest, PutGetExistsListDelete) {
  ASSERT_TRUE(store_->Put("a/b/c", "one").ok());
  ASSERT_TRUE(store_->Put("a/d", "two").ok());
  EXPECT_EQ(*store_->Get("a/b/c"), "one");
  EXPECT_TRUE(*store_->Exists("a/d"));
  EXPECT_FALSE(*store_->Exists("a/x"));
  EXPECT_TRUE(absl::IsNotFound(store_->Get("a/x").status()));
  // A crashed writer's temporary file is never listed.
  std::ofstream(dir_ + "/v/a/d.tmp.ABCDEF") << "partial";
  EXPECT_EQ(*store_->List("a"), (std::vector<std::string>{"a/b/c", "a/d"}));
  ASSERT_TRUE(store_->Delete("a/d").ok());
  ASSERT_TRUE(store_->Delete("a/d").ok());  // absent is fine
  EXPECT_EQ(*store_->List(""), (std::vector<std::string>{"a/b/c"}));
}

TEST_F(LocalObjectStoreTest, PublishNeverReplaces) {
  ASSERT_TRUE(store_->Publish("idx/x", "first").ok());
  auto s = store_->Publish("idx/x", "second");
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(*store_->Get("idx/x"), "first");
}

TEST_F(LocalObjectStoreTest, RejectsKeysThatEscapeTheVault) {
  for (const char* key : {"../x", "a/../../x", "/abs", "a//b", ".hidden", ""}) {
    EXPECT_FALSE(store_->Put(key, "x").ok()) << key;
  }
}

TEST_F(LocalObjectStoreTest, ExclusiveLockExcludesShared) {
  auto shared = store_->Lock("gc", LockMode::kShared, false);
  ASSERT_TRUE(shared.ok());
  auto shared2 = store_->Lock("gc", LockMode::kShared, false);
  ASSERT_TRUE(shared2.ok()) << "shared locks must coexist";
  auto excl = store_->Lock("gc", LockMode::kExclusive, false);
  EXPECT_TRUE(absl::IsUnavailable(excl.status())) << excl.status();
  shared->reset();
  shared2->reset();
  excl = store_->Lock("gc", LockMode::kExclusive, false);
  EXPECT_TRUE(excl.ok()) << excl.status();
}

TEST(LocalObjectStoreOpenTest, MissingVaultNamesItAndHowToCreate) {
  auto s = LocalObjectStore::Open("/nonexistent/cbtd-vault", false);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              ::testing::HasSubstr("/nonexistent/cbtd-vault"));
  EXPECT_THAT(std::string(s.status().message()),
              ::testing::HasSubstr("--create"));
}

}  // namespace
}  // namespace cbtd::receiver
