// RadosObjectStore on a real single-node Ceph cluster that the test binary
// starts (tests/common/ceph_cluster.h) and stops: the ObjectStore contract
// (object_store_contract.cc), then what only RADOS has.
#include "receiver/rados_object_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/common/ceph_cluster.h"
#include "tests/common/ceph_environment.h"
#include "tests/receiver/object_store_contract.h"

namespace cbtd::receiver {
namespace {

using ::librados::bufferlist;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

using test::CephEnvironment;
::testing::Environment* const kCephEnvironment =
    ::testing::AddGlobalTestEnvironment(new CephEnvironment);

RadosStoreOptions Options(const std::string& ns) {
  RadosStoreOptions options;
  options.conf_path = CephEnvironment::cluster().conf_path();
  options.client_id = "cbtd";  // the vault's own user, limited to the pool
  options.pool = test::CephCluster::kPool;
  options.ns = ns;
  options.op_timeout_seconds = 10;
  return options;
}

// Each test gets a namespace of its own in the one pool: an empty vault.
using testing::ObjectStoreContractTest;
INSTANTIATE_TEST_SUITE_P(Rados, ObjectStoreContractTest,
                         ::testing::Values(testing::StoreFactory{
                             "Rados",
                             [](const std::string&, const std::string& id)
                                 -> std::unique_ptr<ObjectStore> {
                               auto store = RadosObjectStore::Open(
                                   Options("contract-" + id));
                               EXPECT_TRUE(store.ok()) << store.status();
                               if (!store.ok()) return nullptr;
                               return *std::move(store);
                             }}),
                         testing::FactoryName);

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `size` bytes that differ from offset to offset and from seed to seed.
std::string Pattern(size_t size, uint64_t seed) {
  std::string data(size, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    data[i] = static_cast<char>(x);
  }
  return data;
}

// The bytes read, or the error as text (a failed read fails the test that
// compares it, not the whole binary).
std::string Got(const absl::StatusOr<std::string>& read) {
  return read.ok() ? *read : "error: " + read.status().ToString();
}

class RadosObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    ns_ = std::string("rados-") + info->name();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    // The namespace as RADOS has it, parts and all, beside the store.
    ASSERT_EQ(raw_client_.init("cbtd"), 0);
    ASSERT_EQ(raw_client_.conf_read_file(
                  CephEnvironment::cluster().conf_path().c_str()),
              0);
    ASSERT_EQ(raw_client_.connect(), 0);
    ASSERT_EQ(raw_client_.ioctx_create(test::CephCluster::kPool, raw_), 0);
    raw_.set_namespace(ns_);
  }
  void TearDown() override {
    raw_.close();
    raw_client_.shutdown();
  }
  // Every object of the namespace, sorted.
  std::vector<std::string> RawOids() {
    std::vector<std::string> oids;
    for (auto it = raw_.nobjects_begin(); it != raw_.nobjects_end(); ++it) {
      oids.push_back(it->get_oid());
    }
    std::sort(oids.begin(), oids.end());
    return oids;
  }
  uint64_t RawSize(const std::string& oid) {
    uint64_t size = 0;
    time_t mtime = 0;
    EXPECT_EQ(raw_.stat(oid, &size, &mtime), 0) << oid;
    return size;
  }
  bool RawHasStripeXattr(const std::string& oid) {
    std::map<std::string, bufferlist> attrs;
    EXPECT_EQ(raw_.getxattrs(oid, attrs), 0) << oid;
    return attrs.contains("cbtd.stripe");
  }
  // Another client (another process) of the same namespace.
  std::unique_ptr<RadosObjectStore> Open() {
    auto store = RadosObjectStore::Open(Options(ns_));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::string ns_;
  std::unique_ptr<RadosObjectStore> store_;
  librados::Rados raw_client_;
  librados::IoCtx raw_;
};

// A store striping at 1 MiB (striped_), beside one with the cluster's
// part size (store_), in the same namespace.
class RadosStripeTest : public RadosObjectStoreTest {
 protected:
  static constexpr uint64_t kPart = 1u << 20;
  void SetUp() override {
    RadosObjectStoreTest::SetUp();
    auto striped = RadosObjectStore::Open(StripedOptions());
    ASSERT_TRUE(striped.ok()) << striped.status();
    striped_ = *std::move(striped);
    ASSERT_EQ(striped_->part_bytes(), kPart);
  }
  RadosStoreOptions StripedOptions() const {
    RadosStoreOptions options = Options(ns_);
    options.max_part_bytes = kPart;
    return options;
  }
  std::unique_ptr<RadosObjectStore> striped_;
};

// Two clients publish the same key at once, many times over: exactly one
// wins each race, the other gets ALREADY_EXISTS, and the object holds the
// winner's bytes whole.
TEST_F(RadosObjectStoreTest, PublishRaceHasExactlyOneWinner) {
  std::unique_ptr<RadosObjectStore> other = Open();
  ASSERT_NE(other, nullptr);
  constexpr int kRaces = 30;
  for (int race = 0; race < kRaces; ++race) {
    const std::string key = "idx/" + std::to_string(race);
    const std::string mine(50000, 'm'), theirs(70000, 't');
    absl::Status a, b;
    std::atomic<bool> go{false};
    std::thread t1([&] {
      while (!go) {
      }
      a = store_->Publish(key, mine);
    });
    std::thread t2([&] {
      while (!go) {
      }
      // One through a writer: its Publish is exclusive too.
      auto writer = other->OpenWriter(key);
      if (!writer.ok()) {
        b = writer.status();
        return;
      }
      b = (*writer)->Append(theirs);
      if (b.ok()) b = (*writer)->Publish();
    });
    go = true;
    t1.join();
    t2.join();
    ASSERT_NE(a.ok(), b.ok()) << key << ": " << a << " / " << b;
    const absl::Status& loser = a.ok() ? b : a;
    EXPECT_TRUE(absl::IsAlreadyExists(loser)) << loser;
    EXPECT_EQ(*store_->Get(key), a.ok() ? mine : theirs) << key;
  }
  EXPECT_EQ(store_->List("idx")->size(), static_cast<size_t>(kRaces));
  EXPECT_EQ(*store_->RemoveTempFiles("idx", INT64_MAX), 0u);
}

// A lock held by another client: UNAVAILABLE at once without waiting;
// with waiting, granted when the holder lets go.
TEST_F(RadosObjectStoreTest, LockHeldByAnotherClientIsUnavailable) {
  std::unique_ptr<RadosObjectStore> other = Open();
  ASSERT_NE(other, nullptr);
  auto held = other->Lock("gc", LockMode::kExclusive, false);
  ASSERT_TRUE(held.ok()) << held.status();
  const auto start = std::chrono::steady_clock::now();
  auto mine = store_->Lock("gc", LockMode::kShared, false);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(absl::IsUnavailable(mine.status())) << mine.status();
  EXPECT_THAT(std::string(mine.status().message()), HasSubstr("'gc'"));
  // The other client goes away (its store and lock destroyed).
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    held->reset();
    other.reset();
  });
  mine = store_->Lock("gc", LockMode::kShared, true);
  release.join();
  EXPECT_TRUE(mine.ok()) << mine.status();
}

// A holder that stops renewing (a dead process) loses the lock after the
// lock's duration. Here: the lock taken by hand, as a StoreLock would, and
// never renewed.
TEST_F(RadosObjectStoreTest, LockOfADeadHolderExpires) {
  RadosStoreOptions options = Options(ns_);
  options.lock_duration_seconds = 2;
  auto store = RadosObjectStore::Open(options);
  ASSERT_TRUE(store.ok());
  librados::Rados client;
  ASSERT_EQ(client.init("cbtd"), 0);
  ASSERT_EQ(client.conf_read_file(options.conf_path.c_str()), 0);
  ASSERT_EQ(client.connect(), 0);
  librados::IoCtx ioctx;
  ASSERT_EQ(client.ioctx_create(options.pool.c_str(), ioctx), 0);
  ioctx.set_namespace(ns_);
  timeval two_seconds{2, 0};
  ASSERT_EQ(ioctx.lock_exclusive(".locks/gc", "cbtd", "dead-holder", "",
                                 &two_seconds, 0),
            0);
  EXPECT_TRUE(absl::IsUnavailable(
      (*store)->Lock("gc", LockMode::kExclusive, false).status()));
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_TRUE((*store)->Lock("gc", LockMode::kExclusive, false).ok());
  ioctx.close();
  client.shutdown();
}

// A StoreLock held longer than its duration is renewed, not lost.
TEST_F(RadosObjectStoreTest, HeldLockIsRenewed) {
  RadosStoreOptions options = Options(ns_);
  options.lock_duration_seconds = 1;
  auto store = RadosObjectStore::Open(options);
  ASSERT_TRUE(store.ok());
  auto held = (*store)->Lock("gc", LockMode::kExclusive, false);
  ASSERT_TRUE(held.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_TRUE(absl::IsUnavailable(
      store_->Lock("gc", LockMode::kExclusive, false).status()));
}

// DeleteLock by the holder ends the lock: its renewals do not take it
// again, so another user can lock the name while the StoreLock lives on.
TEST_F(RadosObjectStoreTest, DeletedLockIsNotTakenAgainByRenewal) {
  RadosStoreOptions options = Options(ns_);
  options.lock_duration_seconds = 1;
  auto store = RadosObjectStore::Open(options);
  ASSERT_TRUE(store.ok());
  auto held = (*store)->Lock("host-h", LockMode::kExclusive, false);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE((*store)->DeleteLock("host-h").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto other = store_->Lock("host-h", LockMode::kExclusive, false);
  EXPECT_TRUE(other.ok()) << other.status();
}

// Objects in one namespace are invisible in another: two vaults share a
// pool.
TEST_F(RadosObjectStoreTest, NamespacesAreSeparateVaults) {
  ASSERT_TRUE(store_->Put("a/1", "here").ok());
  auto elsewhere = RadosObjectStore::Open(Options(ns_ + "-elsewhere"));
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_FALSE(*(*elsewhere)->Exists("a/1"));
  EXPECT_TRUE((*elsewhere)->List("")->empty());
  EXPECT_EQ(store_->where(), "vault/" + ns_);
}

// Objects larger than osd_max_write_size (90 MiB here, as by default) are
// striped into parts of at most 64 MiB and read back whole.
TEST_F(RadosObjectStoreTest, ObjectsOverMaxWriteSizeAreStriped) {
  EXPECT_EQ(store_->part_bytes(), 64u << 20);
  const std::string big = Pattern((90u << 20) + 1, 1);
  ASSERT_TRUE(store_->Put("p/big", big).ok());
  EXPECT_TRUE(Got(store_->Get("p/big")) == big);
  EXPECT_EQ(RawOids().size(), 3u);  // the head and two parts
  ASSERT_TRUE(store_->Delete("p/big").ok());
  auto writer = store_->OpenWriter("p/big");
  ASSERT_TRUE(writer.ok());
  for (size_t at = 0; at < big.size(); at += 16u << 20) {
    ASSERT_TRUE(
        (*writer)->Append(std::string_view(big).substr(at, 16u << 20)).ok());
  }
  ASSERT_TRUE((*writer)->Publish().ok());
  auto back = store_->GetRange("p/big", (64u << 20) - 3, 6);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, big.substr((64u << 20) - 3, 6));
  EXPECT_TRUE(Got(store_->Get("p/big")) == big);
  ASSERT_TRUE(store_->Delete("p/big").ok());
  EXPECT_TRUE(RawOids().empty());
}

// With 1 MiB parts: an object of at most one part is one object, byte for
// byte as before striping; a larger one is a head and parts, read back
// whole, by ranges across parts and through a reader.
TEST_F(RadosStripeTest, StripedObjectsReadBackByRangesAcrossParts) {
  const std::string one = Pattern(kPart, 2);
  ASSERT_TRUE(striped_->Publish("s/one", one).ok());
  EXPECT_EQ(RawOids(), (std::vector<std::string>{"s/one"}));
  EXPECT_EQ(RawSize("s/one"), kPart);
  EXPECT_FALSE(RawHasStripeXattr("s/one"));

  const std::string data = Pattern(3 * kPart + kPart / 2, 3);
  ASSERT_TRUE(striped_->Publish("s/x", data).ok());
  const std::vector<std::string> oids = RawOids();
  ASSERT_EQ(oids.size(), 6u) << ::testing::PrintToString(oids);
  EXPECT_EQ(RawSize("s/x"), 0u);  // the head holds no bytes of its own
  EXPECT_TRUE(RawHasStripeXattr("s/x"));
  for (int i = 0; i < 4; ++i) {
    EXPECT_THAT(oids, Contains(MatchesRegex("\\.parts/s/x@[0-9a-f]+\\." +
                                            std::to_string(i))));
  }
  EXPECT_EQ(*striped_->List("s"), (std::vector<std::string>{"s/one", "s/x"}));
  EXPECT_EQ(*striped_->List(""), (std::vector<std::string>{"s/one", "s/x"}));
  EXPECT_TRUE(Got(striped_->Get("s/x")) == data);
  EXPECT_TRUE(*striped_->Exists("s/x"));
  // Inside a part, across one boundary, across three parts, to the end.
  for (auto [offset, length] :
       std::vector<std::pair<uint64_t, uint32_t>>{{10, 100},
                                                  {kPart - 10, 20},
                                                  {kPart / 2, 2 * kPart + 7},
                                                  {data.size() - 5, 5},
                                                  {data.size(), 0}}) {
    auto range = striped_->GetRange("s/x", offset, length);
    ASSERT_TRUE(range.ok()) << offset << ": " << range.status();
    EXPECT_TRUE(*range == data.substr(offset, length)) << offset;
    std::string into = "reused";
    ASSERT_TRUE(striped_->GetRangeInto("s/x", offset, length, into).ok());
    EXPECT_TRUE(into == data.substr(offset, length)) << offset;
  }
  EXPECT_TRUE(
      absl::IsDataLoss(striped_->GetRange("s/x", data.size() - 5, 6).status()));
  auto reader = striped_->OpenReader("s/x");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->size_bytes(), data.size());
  EXPECT_TRUE(Got((*reader)->ReadAt(2 * kPart - 1, 3)) ==
              data.substr(2 * kPart - 1, 3));
  EXPECT_TRUE(absl::IsDataLoss((*reader)->ReadAt(data.size(), 1).status()));
  // Touch and the modified time are the head's.
  const int64_t before = *striped_->ModifiedUnixMs("s/x");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(striped_->Touch("s/x").ok());
  EXPECT_GT(*striped_->ModifiedUnixMs("s/x"), before);
  // Another client with the cluster's own part size reads it too.
  EXPECT_TRUE(Got(store_->Get("s/x")) == data);
}

// A writer streams into parts, reads back across them, shows nothing
// before Publish and publishes the parts under a head.
TEST_F(RadosStripeTest, WriterStreamsPartsReadsBackAndPublishes) {
  const std::string data = Pattern(4 * kPart + 12345, 4);
  auto writer = striped_->OpenWriter("idx/w");
  ASSERT_TRUE(writer.ok());
  // Pieces of 300 KiB, then one append over three part boundaries.
  size_t at = 0;
  for (; at < kPart + 7; at += 300 << 10) {
    ASSERT_TRUE((*writer)->Append(data.substr(at, 300 << 10)).ok());
  }
  ASSERT_TRUE((*writer)->Append(std::string_view(data).substr(at)).ok());
  EXPECT_EQ((*writer)->size_bytes(), data.size());
  EXPECT_TRUE(Got((*writer)->ReadBack(kPart - 100, 2 * kPart + 200)) ==
              data.substr(kPart - 100, 2 * kPart + 200));
  EXPECT_FALSE(*striped_->Exists("idx/w"));
  EXPECT_TRUE(striped_->List("")->empty());
  ASSERT_TRUE((*writer)->Publish().ok());
  EXPECT_TRUE(Got(striped_->Get("idx/w")) == data);
  EXPECT_EQ(RawOids().size(), 6u);  // the head and five parts
  // The parts are live: RemoveTempFiles leaves them.
  EXPECT_EQ(*striped_->RemoveTempFiles("idx", INT64_MAX), 0u);
  EXPECT_TRUE(Got(striped_->Get("idx/w")) == data);
  writer->reset();
  EXPECT_EQ(RawOids().size(), 6u);
  // A writer never published leaves no part behind.
  auto dropped = striped_->OpenWriter("idx/dropped");
  ASSERT_TRUE(dropped.ok());
  ASSERT_TRUE((*dropped)->Append(data).ok());
  EXPECT_EQ(RawOids().size(), 11u);
  dropped->reset();
  EXPECT_EQ(RawOids().size(), 6u);
}

// Publish of a striped object on a taken key, plain or striped, directly
// or through a writer: ALREADY_EXISTS, and nothing written stays.
TEST_F(RadosStripeTest, PublishOnATakenKeyWritesNothing) {
  const std::string first = Pattern(3 * kPart, 5);
  const std::string second = Pattern(2 * kPart + 1, 6);
  ASSERT_TRUE(striped_->Publish("k/striped", first).ok());
  ASSERT_TRUE(striped_->Publish("k/plain", "small").ok());
  const std::vector<std::string> oids = RawOids();
  for (const char* key : {"k/striped", "k/plain"}) {
    const absl::Status s = striped_->Publish(key, second);
    EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(key));
    auto writer = striped_->OpenWriter(key);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append(second).ok());
    const absl::Status w = (*writer)->Publish();
    EXPECT_TRUE(absl::IsAlreadyExists(w)) << w;
  }
  EXPECT_EQ(RawOids(), oids);
  EXPECT_TRUE(Got(striped_->Get("k/striped")) == first);
  EXPECT_EQ(Got(striped_->Get("k/plain")), "small");
}

// Two clients publish the same striped key at once: one wins, the other
// gets ALREADY_EXISTS and its parts go.
TEST_F(RadosStripeTest, StripedPublishRaceHasExactlyOneWinner) {
  auto other = RadosObjectStore::Open(StripedOptions());
  ASSERT_TRUE(other.ok());
  for (int race = 0; race < 5; ++race) {
    const std::string key = "r/" + std::to_string(race);
    const std::string mine = Pattern(2 * kPart + 10, 7);
    const std::string theirs = Pattern(3 * kPart + 20, 8);
    absl::Status a, b;
    std::atomic<bool> go{false};
    std::thread t1([&] {
      while (!go) {
      }
      a = striped_->Publish(key, mine);
    });
    std::thread t2([&] {
      while (!go) {
      }
      auto writer = (*other)->OpenWriter(key);
      b = writer.ok() ? (*writer)->Append(theirs) : writer.status();
      if (b.ok()) b = (*writer)->Publish();
    });
    go = true;
    t1.join();
    t2.join();
    ASSERT_NE(a.ok(), b.ok()) << key << ": " << a << " / " << b;
    EXPECT_TRUE(absl::IsAlreadyExists(a.ok() ? b : a));
    EXPECT_TRUE(Got(striped_->Get(key)) == (a.ok() ? mine : theirs)) << key;
  }
  // Each key's head and the winner's parts, nothing else.
  size_t parts = 0;
  for (int race = 0; race < 5; ++race) {
    const std::string key = "r/" + std::to_string(race);
    parts +=
        (striped_->OpenReader(key).value()->size_bytes() + kPart - 1) / kPart;
  }
  EXPECT_EQ(RawOids().size(), 5 + parts);
}

// Put replaces a striped object by a striped or a plain one (and back)
// whole, and removes the parts of the object it replaced. A reader of the
// replaced object fails NOT_FOUND rather than read the new one's parts.
TEST_F(RadosStripeTest, PutReplacesStripedObjectsAndRemovesOldParts) {
  const std::string a = Pattern(3 * kPart, 9);
  const std::string b = Pattern(4 * kPart + kPart / 2, 10);
  ASSERT_TRUE(striped_->Put("v/x", a).ok());
  auto reader = striped_->OpenReader("v/x");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(striped_->Put("v/x", b).ok());
  EXPECT_TRUE(Got(striped_->Get("v/x")) == b);
  EXPECT_EQ(RawOids().size(), 6u);  // b's head and five parts
  const absl::StatusOr<std::string> stale = (*reader)->ReadAt(kPart, 10);
  EXPECT_TRUE(absl::IsNotFound(stale.status())) << stale.status();
  ASSERT_TRUE(striped_->Put("v/x", "tiny").ok());
  EXPECT_EQ(Got(striped_->Get("v/x")), "tiny");
  EXPECT_EQ(Got(striped_->GetRange("v/x", 1, 2)), "in");
  EXPECT_EQ((*striped_->OpenReader("v/x"))->size_bytes(), 4u);
  EXPECT_EQ(RawOids(), (std::vector<std::string>{"v/x"}));
  EXPECT_FALSE(RawHasStripeXattr("v/x"));
  ASSERT_TRUE(striped_->Put("v/x", a).ok());
  EXPECT_TRUE(Got(striped_->Get("v/x")) == a);
  // A gather write striped across its pieces.
  const std::string_view pieces[] = {std::string_view(b).substr(0, 5),
                                     std::string_view(b).substr(5, kPart),
                                     std::string_view(b).substr(kPart + 5)};
  ASSERT_TRUE(striped_->PutUnsynced("v/y", pieces).ok());
  EXPECT_TRUE(Got(striped_->Get("v/y")) == b);
  EXPECT_EQ(RawOids().size(), 4u + 6u);
}

TEST_F(RadosStripeTest, DeleteLeavesNoParts) {
  ASSERT_TRUE(striped_->Publish("d/x", Pattern(5 * kPart, 11)).ok());
  ASSERT_EQ(RawOids().size(), 6u);
  ASSERT_TRUE(striped_->Delete("d/x").ok());
  EXPECT_FALSE(*striped_->Exists("d/x"));
  EXPECT_TRUE(absl::IsNotFound(striped_->Get("d/x").status()));
  EXPECT_TRUE(RawOids().empty());
  EXPECT_TRUE(striped_->Delete("d/x").ok());
}

// Parts no head names (a Delete or Put cut short after the head, a writer
// that died) are removed by RemoveTempFiles once older than the cut-off;
// a live object's parts never.
TEST_F(RadosStripeTest, RemoveTempFilesRemovesOrphanedPartsOnly) {
  const std::string live = Pattern(2 * kPart + 3, 12);
  ASSERT_TRUE(striped_->Publish("o/live", live).ok());
  ASSERT_TRUE(striped_->Publish("o/headless", Pattern(3 * kPart, 13)).ok());
  ASSERT_EQ(raw_.remove("o/headless"), 0);  // a Delete that crashed
  bufferlist stale;
  stale.append("a replaced object's part");
  ASSERT_EQ(raw_.write_full(".parts/o/live@0123456789abcdef.0", stale), 0);
  ASSERT_EQ(RawOids().size(), 1u + 3 + 3 + 1);
  EXPECT_EQ(*striped_->RemoveTempFiles("o", NowUnixMs() - 3600 * 1000), 0u);
  EXPECT_EQ(*striped_->RemoveTempFiles("other", INT64_MAX), 0u);
  EXPECT_EQ(*striped_->RemoveTempFiles("o", INT64_MAX), 4u);
  EXPECT_EQ(RawOids().size(), 4u);
  EXPECT_TRUE(Got(striped_->Get("o/live")) == live);
  EXPECT_EQ(*striped_->List(""), (std::vector<std::string>{"o/live"}));
}

// A head whose part is missing or short is DATA_LOSS naming the object and
// the part; ranges in the other parts still read.
TEST_F(RadosStripeTest, MissingOrShortPartIsDataLoss) {
  const std::string data = Pattern(3 * kPart, 14);
  ASSERT_TRUE(striped_->Publish("m/x", data).ok());
  std::string part1, part2;
  for (const std::string& oid : RawOids()) {
    if (oid.ends_with(".1")) part1 = oid;
    if (oid.ends_with(".2")) part2 = oid;
  }
  ASSERT_FALSE(part1.empty());
  auto reader = striped_->OpenReader("m/x");
  ASSERT_TRUE(reader.ok());
  ASSERT_EQ(raw_.remove(part1), 0);
  const absl::StatusOr<std::string> get = striped_->Get("m/x");
  EXPECT_TRUE(absl::IsDataLoss(get.status())) << get.status();
  EXPECT_THAT(std::string(get.status().message()), HasSubstr("'m/x'"));
  EXPECT_THAT(std::string(get.status().message()), HasSubstr(part1));
  EXPECT_THAT(std::string(get.status().message()), HasSubstr("missing"));
  EXPECT_TRUE(Got(striped_->GetRange("m/x", 5, 10)) == data.substr(5, 10));
  EXPECT_TRUE(
      absl::IsDataLoss(striped_->GetRange("m/x", kPart - 1, 2).status()));
  EXPECT_TRUE(absl::IsDataLoss((*reader)->ReadAt(kPart + 1, 2).status()));
  ASSERT_EQ(raw_.trunc(part2, kPart - 1), 0);
  const absl::StatusOr<std::string> tail =
      striped_->GetRange("m/x", 3 * kPart - 1, 1);
  EXPECT_TRUE(absl::IsDataLoss(tail.status())) << tail.status();
  EXPECT_THAT(std::string(tail.status().message()), HasSubstr(part2));
  EXPECT_THAT(std::string(tail.status().message()), HasSubstr("shorter"));
}

// RemoveTempFiles run while a striped writer was still writing (which its
// caller promised not to do) took its parts: Publish fails and publishes
// nothing, rather than a head over missing parts.
TEST_F(RadosStripeTest, WriterWhosePartsWereRemovedPublishesNothing) {
  auto writer = striped_->OpenWriter("idx/w");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(Pattern(3 * kPart, 15)).ok());
  EXPECT_EQ(*striped_->RemoveTempFiles("idx", INT64_MAX), 3u);
  EXPECT_TRUE(absl::IsDataLoss((*writer)->ReadBack(0, 10).status()));
  const absl::Status published = (*writer)->Publish();
  EXPECT_TRUE(absl::IsDataLoss(published)) << published;
  EXPECT_FALSE(*striped_->Exists("idx/w"));
  EXPECT_TRUE(RawOids().empty());
}

// A head whose stripe header cannot be read is DATA_LOSS naming the
// object; Delete still removes it.
TEST_F(RadosStripeTest, UnreadableStripeHeaderIsDataLoss) {
  ASSERT_TRUE(striped_->Put("h/x", "").ok());
  bufferlist garbage;
  garbage.append("1 100 0 3 abc");
  ASSERT_EQ(raw_.setxattr("h/x", "cbtd.stripe", garbage), 0);
  for (const absl::Status& s :
       {striped_->Get("h/x").status(), striped_->GetRange("h/x", 0, 1).status(),
        striped_->OpenReader("h/x").status()}) {
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("'h/x'"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("stripe header"));
  }
  ASSERT_TRUE(striped_->Delete("h/x").ok());
  EXPECT_TRUE(RawOids().empty());
}

// A writer's Publish copies its temporary on the OSD, in rounds of
// osd_copyfrom_max_chunk (8 MiB): a 24 MiB + 1 object arrives byte for
// byte, and its temporary is gone.
TEST_F(RadosObjectStoreTest, LargeWriterPublishesByteForByte) {
  const size_t size = (24u << 20) + 1;
  std::string data(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>((i * 131 + 7) >> 5);
  }
  auto writer = store_->OpenWriter("idx/large");
  ASSERT_TRUE(writer.ok());
  for (size_t at = 0; at < size; at += 1u << 20) {
    ASSERT_TRUE(
        (*writer)->Append(std::string_view(data).substr(at, 1u << 20)).ok());
  }
  ASSERT_TRUE((*writer)->Publish().ok());
  auto back = store_->Get("idx/large");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == data) << "sizes " << back->size() << " " << size;
  EXPECT_EQ(*store_->RemoveTempFiles("idx", INT64_MAX), 0u);
}

TEST_F(RadosObjectStoreTest, ReaderOfADeletedObjectFailsNotFound) {
  ASSERT_TRUE(store_->Put("p/x", "bytes").ok());
  auto reader = store_->OpenReader("p/x");
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(*(*reader)->ReadAt(1, 3), "yte");
  ASSERT_TRUE(store_->Delete("p/x").ok());
  EXPECT_TRUE(absl::IsNotFound((*reader)->ReadAt(1, 3).status()));
}

TEST(RadosObjectStoreOpenTest, MissingPoolNamesItAndHowToCreate) {
  RadosStoreOptions options = Options("");
  options.pool = "no-such-pool";
  auto store = RadosObjectStore::Open(options);
  EXPECT_TRUE(absl::IsNotFound(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("'no-such-pool' does not exist"));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("ceph osd pool create no-such-pool"));
}

TEST(RadosObjectStoreOpenTest, UnknownUserIsAnAuthenticationFailure) {
  RadosStoreOptions options = Options("");
  options.client_id = "nobody";
  auto store = RadosObjectStore::Open(options);
  EXPECT_TRUE(absl::IsPermissionDenied(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("client.nobody"));
}

TEST(RadosObjectStoreOpenTest, MissingConfigNamesIt) {
  RadosStoreOptions options = Options("");
  options.conf_path = "/nonexistent/ceph.conf";
  auto store = RadosObjectStore::Open(options);
  EXPECT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("/nonexistent/ceph.conf"));
}

// The user's caps end at its pool: another pool opens (the pool list is
// public) but every op on it is PERMISSION_DENIED naming the object.
TEST(RadosObjectStoreOpenTest, PoolOutsideTheUsersCapsIsPermissionDenied) {
  RadosStoreOptions admin = Options("");
  admin.client_id = "admin";
  auto cluster = std::make_unique<librados::Rados>();
  ASSERT_EQ(cluster->init("admin"), 0);
  ASSERT_EQ(cluster->conf_read_file(admin.conf_path.c_str()), 0);
  ASSERT_EQ(cluster->connect(), 0);
  ASSERT_EQ(cluster->pool_create("other"), 0);
  RadosStoreOptions options = Options("");
  options.pool = "other";
  auto store = RadosObjectStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  const absl::Status put = (*store)->Put("a", "x");
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_THAT(std::string(put.message()), HasSubstr("'a' in RADOS pool other"));
  cluster->shutdown();
}

TEST(RadosObjectStoreOpenTest, UnreachableMonitorsAreUnavailableInTime) {
  // A config naming a monitor nobody runs: a port the kernel just handed
  // out and that nothing listens on any more.
  int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(sock);
  const test::TempDir tmp("cbtd-dead-mon-");
  const std::string conf = tmp.path() + "/ceph.conf";
  std::ofstream(conf) << "[global]\nmon host = v2:127.0.0.1:"
                      << ntohs(addr.sin_port) << "\nkeyring = "
                      << CephEnvironment::cluster().keyring_path() << "\n";
  RadosStoreOptions options = Options("");
  options.conf_path = conf;
  options.op_timeout_seconds = 2;
  const auto start = std::chrono::steady_clock::now();
  auto store = RadosObjectStore::Open(options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(absl::IsUnavailable(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(conf));
  EXPECT_LT(took, std::chrono::seconds(10));
}

// An OSD that does not answer (paused, as a dead one) makes ops fail
// within the op timeout instead of hanging; resumed, it serves again.
TEST(RadosObjectStoreOsdTest, OpsToAStoppedOsdTimeOut) {
  RadosStoreOptions options = Options("osd-pause");
  options.op_timeout_seconds = 2;
  auto store = RadosObjectStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("a", "before").ok());
  CephEnvironment::cluster().PauseOsd(true);
  const auto start = std::chrono::steady_clock::now();
  const absl::Status put = (*store)->Put("a", "during");
  const auto get = (*store)->Get("a");
  const auto took = std::chrono::steady_clock::now() - start;
  CephEnvironment::cluster().PauseOsd(false);
  EXPECT_TRUE(absl::IsUnavailable(put)) << put;
  EXPECT_THAT(std::string(put.message()), HasSubstr("timed out"));
  EXPECT_TRUE(absl::IsUnavailable(get.status())) << get.status();
  EXPECT_LT(took, std::chrono::seconds(10));
  // Back: the object is one of the two writes, whole.
  auto after = (*store)->Get("a");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(*after, ::testing::AnyOf("before", "during"));
}

}  // namespace
}  // namespace cbtd::receiver
