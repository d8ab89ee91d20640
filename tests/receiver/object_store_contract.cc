#include "tests/receiver/object_store_contract.h"

#include <gmock/gmock.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace cbtd::receiver::testing {
namespace {

using ::testing::HasSubstr;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_P(ObjectStoreContractTest, PutGetExistsListDelete) {
  ASSERT_TRUE(store_->Put("a/b/c", "one").ok());
  ASSERT_TRUE(store_->Put("a/d", "two").ok());
  ASSERT_TRUE(store_->Put("ab/e", "not under a/").ok());
  EXPECT_EQ(*store_->Get("a/b/c"), "one");
  EXPECT_TRUE(*store_->Exists("a/d"));
  EXPECT_FALSE(*store_->Exists("a/x"));
  EXPECT_TRUE(absl::IsNotFound(store_->Get("a/x").status()));
  // A writer's unpublished bytes are never listed.
  auto writer = store_->OpenWriter("a/w");
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append("partial").ok());
  EXPECT_EQ(*store_->List("a"), (std::vector<std::string>{"a/b/c", "a/d"}));
  ASSERT_TRUE(store_->Put("a/d", "replaced").ok());
  EXPECT_EQ(*store_->Get("a/d"), "replaced");
  ASSERT_TRUE(store_->Delete("a/d").ok());
  ASSERT_TRUE(store_->Delete("a/d").ok());  // absent is fine
  EXPECT_EQ(*store_->List(""), (std::vector<std::string>{"a/b/c", "ab/e"}));
}

TEST_P(ObjectStoreContractTest, ListIsSortedAndEmptyForAnUnknownPrefix) {
  for (const char* key : {"p/z", "p/a/2", "p/a/10", "p/m", "q/a"}) {
    ASSERT_TRUE(store_->Put(key, key).ok()) << key;
  }
  EXPECT_EQ(*store_->List("p"),
            (std::vector<std::string>{"p/a/10", "p/a/2", "p/m", "p/z"}));
  EXPECT_EQ(*store_->List("p/a"),
            (std::vector<std::string>{"p/a/10", "p/a/2"}));
  EXPECT_TRUE(store_->List("none")->empty());
}

TEST_P(ObjectStoreContractTest, PutUnsyncedStoresWholeObjects) {
  ASSERT_TRUE(store_->Put("c/bb/2", "old").ok());
  std::vector<std::pair<std::string, std::string>> batch;
  for (int i = 0; i < 20; ++i) {
    batch.emplace_back(
        "c/" + std::string(i % 2 ? "aa/" : "bb/") + std::to_string(i),
        std::string(1000 + i, static_cast<char>('a' + i)));
  }
  for (const auto& [key, data] : batch) {
    // In two parts, to exercise the gather write.
    const std::string_view parts[] = {std::string_view(data).substr(0, 7),
                                      std::string_view(data).substr(7)};
    ASSERT_TRUE(store_->PutUnsynced(key, parts).ok()) << key;
  }
  ASSERT_TRUE(store_->SyncAll().ok());
  for (const auto& [key, data] : batch) {
    EXPECT_EQ(*store_->Get(key), data) << key;
  }
  EXPECT_EQ(store_->List("c")->size(), 20u);  // "c/bb/2" replaced, not added
  EXPECT_EQ(*store_->RemoveTempFiles("c", INT64_MAX), 0u);
  // A bad key is refused and writes nothing.
  const std::string_view x = "x";
  EXPECT_TRUE(
      absl::IsInvalidArgument(store_->PutUnsynced("../escape", {&x, 1})));
  EXPECT_EQ(store_->List("")->size(), 20u);
}

TEST_P(ObjectStoreContractTest, EmptyObjectsAreObjects) {
  ASSERT_TRUE(store_->Put("e/put", "").ok());
  ASSERT_TRUE(store_->Publish("e/pub", "").ok());
  auto writer = store_->OpenWriter("e/writer");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Publish().ok());
  for (const char* key : {"e/put", "e/pub", "e/writer"}) {
    EXPECT_TRUE(*store_->Exists(key)) << key;
    EXPECT_EQ(*store_->Get(key), "") << key;
  }
  EXPECT_EQ(store_->List("e")->size(), 3u);
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Publish("e/writer", "")));
}

TEST_P(ObjectStoreContractTest, PublishNeverReplaces) {
  ASSERT_TRUE(store_->Publish("idx/x", "first").ok());
  auto s = store_->Publish("idx/x", "second");
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("idx/x"));
  EXPECT_EQ(*store_->Get("idx/x"), "first");
}

TEST_P(ObjectStoreContractTest, WriterPublishesWholeAndReadsBack) {
  auto writer = store_->OpenWriter("idx/w");
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::string all;
  for (int i = 0; i < 50; ++i) {
    const std::string piece(1000 + i * 37, static_cast<char>('A' + i % 26));
    ASSERT_TRUE((*writer)->Append(piece).ok());
    all += piece;
  }
  EXPECT_EQ((*writer)->size_bytes(), all.size());
  EXPECT_EQ(*(*writer)->ReadBack(1500, 4000), all.substr(1500, 4000));
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*writer)->ReadBack(all.size() - 10, 11).status()));
  // Nothing visible under the key before Publish.
  EXPECT_FALSE(*store_->Exists("idx/w"));
  EXPECT_TRUE(store_->List("idx")->empty());
  ASSERT_TRUE((*writer)->Publish().ok());
  EXPECT_EQ(*store_->Get("idx/w"), all);
  EXPECT_EQ(*store_->List("idx"), (std::vector<std::string>{"idx/w"}));
  // Spent after Publish.
  EXPECT_FALSE((*writer)->Append("more").ok());
  writer->reset();
  EXPECT_EQ(*store_->Get("idx/w"), all);
  EXPECT_EQ(*store_->RemoveTempFiles("idx", INT64_MAX), 0u);
}

TEST_P(ObjectStoreContractTest, WriterPublishNeverReplaces) {
  ASSERT_TRUE(store_->Put("idx/x", "first").ok());
  auto writer = store_->OpenWriter("idx/x");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("second").ok());
  const absl::Status s = (*writer)->Publish();
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_EQ(*store_->Get("idx/x"), "first");
  // The writer's temporary is gone with it.
  EXPECT_EQ(*store_->RemoveTempFiles("idx", INT64_MAX), 0u);
}

TEST_P(ObjectStoreContractTest, UnpublishedWriterLeavesNothing) {
  {
    auto writer = store_->OpenWriter("idx/gone");
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("scratch").ok());
  }
  EXPECT_FALSE(*store_->Exists("idx/gone"));
  EXPECT_TRUE(store_->List("")->empty());
  EXPECT_EQ(*store_->RemoveTempFiles("idx", INT64_MAX), 0u);
}

// What a writer that died before Publish leaves (here: one still open) is
// removed by RemoveTempFiles once older than the cut-off, and only then;
// objects are never touched.
TEST_P(ObjectStoreContractTest, RemoveTempFilesRemovesOnlyOldTemporaries) {
  ASSERT_TRUE(store_->Put("c/aa/obj", "keep").ok());
  auto writer = store_->OpenWriter("c/aa/pending");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("partial").ok());
  EXPECT_EQ(*store_->RemoveTempFiles("c", NowUnixMs() - 3600 * 1000), 0u);
  EXPECT_EQ(*store_->RemoveTempFiles("other", INT64_MAX), 0u);
  EXPECT_EQ(*store_->RemoveTempFiles("c", INT64_MAX), 1u);
  EXPECT_EQ(*store_->Get("c/aa/obj"), "keep");
  EXPECT_EQ(*store_->List(""), (std::vector<std::string>{"c/aa/obj"}));
  // The writer's bytes are gone: publishing fails and creates nothing
  // partial.
  EXPECT_FALSE((*writer)->Publish().ok());
  EXPECT_FALSE(*store_->Exists("c/aa/pending"));
}

TEST_P(ObjectStoreContractTest, RangesAndReaders) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>(i * 7 + 3);
  }
  ASSERT_TRUE(store_->Put("p/pack", data).ok());
  EXPECT_EQ(*store_->GetRange("p/pack", 12345, 5000), data.substr(12345, 5000));
  EXPECT_EQ(*store_->GetRange("p/pack", 99000, 1000), data.substr(99000));
  std::string out = "stale";
  ASSERT_TRUE(store_->GetRangeInto("p/pack", 10, 20, out).ok());
  EXPECT_EQ(out, data.substr(10, 20));
  const auto past = store_->GetRange("p/pack", 99001, 1000);
  EXPECT_TRUE(absl::IsDataLoss(past.status())) << past.status();
  EXPECT_THAT(std::string(past.status().message()), HasSubstr("p/pack"));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRange("p/none", 0, 10).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetRange("p/none", 0, 0).status()));

  auto reader = store_->OpenReader("p/pack");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->size_bytes(), data.size());
  EXPECT_EQ(*(*reader)->ReadAt(500, 70000), data.substr(500, 70000));
  EXPECT_TRUE(absl::IsDataLoss((*reader)->ReadAt(data.size(), 1).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->OpenReader("p/none").status()));
}

TEST_P(ObjectStoreContractTest, TouchMovesModifiedTimeForward) {
  ASSERT_TRUE(store_->Put("t/obj", "x").ok());
  const int64_t before = NowUnixMs();
  auto written = store_->ModifiedUnixMs("t/obj");
  ASSERT_TRUE(written.ok()) << written.status();
  // Within a few seconds of now (clock granularity, a loaded machine).
  EXPECT_NEAR(static_cast<double>(*written), static_cast<double>(before), 5000);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_TRUE(store_->Touch("t/obj").ok());
  auto touched = store_->ModifiedUnixMs("t/obj");
  ASSERT_TRUE(touched.ok());
  EXPECT_GE(*touched, *written + 1000);
  EXPECT_EQ(*store_->Get("t/obj"), "x");  // Touch leaves the bytes
  EXPECT_TRUE(absl::IsNotFound(store_->Touch("t/none")));
  EXPECT_FALSE(*store_->Exists("t/none"));  // and does not create
  EXPECT_TRUE(absl::IsNotFound(store_->ModifiedUnixMs("t/none").status()));
}

TEST_P(ObjectStoreContractTest, RejectsKeysThatEscapeTheVault) {
  for (const char* key : {"../x", "a/../../x", "/abs", "a//b", ".hidden", ""}) {
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Put(key, "x"))) << key;
    EXPECT_TRUE(absl::IsInvalidArgument(store_->Publish(key, "x"))) << key;
    EXPECT_FALSE(store_->Get(key).ok()) << key;
  }
  EXPECT_TRUE(store_->List("")->empty());
}

TEST_P(ObjectStoreContractTest, ExclusiveLockExcludesShared) {
  auto shared = store_->Lock("gc", LockMode::kShared, false);
  ASSERT_TRUE(shared.ok()) << shared.status();
  auto shared2 = store_->Lock("gc", LockMode::kShared, false);
  ASSERT_TRUE(shared2.ok()) << "shared locks must coexist";
  auto excl = store_->Lock("gc", LockMode::kExclusive, false);
  EXPECT_TRUE(absl::IsUnavailable(excl.status())) << excl.status();
  EXPECT_THAT(std::string(excl.status().message()), HasSubstr("gc"));
  shared->reset();
  shared2->reset();
  excl = store_->Lock("gc", LockMode::kExclusive, false);
  ASSERT_TRUE(excl.ok()) << excl.status();
  EXPECT_TRUE(absl::IsUnavailable(
      store_->Lock("gc", LockMode::kShared, false).status()));
  // Locks are not objects.
  EXPECT_TRUE(store_->List("")->empty());
  // A lock of another name is independent.
  EXPECT_TRUE(store_->Lock("other", LockMode::kExclusive, false).ok());
}

TEST_P(ObjectStoreContractTest, WaitingLockGetsItWhenReleased) {
  auto held = store_->Lock("gc", LockMode::kExclusive, false);
  ASSERT_TRUE(held.ok());
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    held->reset();
  });
  const auto start = std::chrono::steady_clock::now();
  auto waited = store_->Lock("gc", LockMode::kExclusive, true);
  const auto waited_for = std::chrono::steady_clock::now() - start;
  releaser.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_GE(waited_for, std::chrono::milliseconds(250));
}

TEST_P(ObjectStoreContractTest, DeleteLockStartsAfresh) {
  {
    auto held = store_->Lock("hosts-h", LockMode::kExclusive, false);
    ASSERT_TRUE(held.ok());
    ASSERT_TRUE(store_->DeleteLock("hosts-h").ok());
  }
  ASSERT_TRUE(store_->DeleteLock("hosts-h").ok());  // absent is fine
  EXPECT_TRUE(store_->Lock("hosts-h", LockMode::kExclusive, false).ok());
}

// Another user of the vault (another process) sees the same objects and
// the same locks.
TEST_P(ObjectStoreContractTest, SecondUserSeesObjectsAndLocks) {
  std::unique_ptr<ObjectStore> other = OpenAgain();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(store_->Publish("v/1", "data").ok());
  EXPECT_EQ(*other->Get("v/1"), "data");
  EXPECT_TRUE(absl::IsAlreadyExists(other->Publish("v/1", "other")));
  auto held = store_->Lock("gc", LockMode::kExclusive, false);
  ASSERT_TRUE(held.ok());
  auto theirs = other->Lock("gc", LockMode::kShared, false);
  EXPECT_TRUE(absl::IsUnavailable(theirs.status())) << theirs.status();
  held->reset();
  EXPECT_TRUE(other->Lock("gc", LockMode::kShared, false).ok());
}

}  // namespace
}  // namespace cbtd::receiver::testing
