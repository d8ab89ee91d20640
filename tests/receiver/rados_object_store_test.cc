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

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/ceph_cluster.h"
#include "tests/receiver/object_store_contract.h"

namespace cbtd::receiver {
namespace {

using ::testing::HasSubstr;

// One cluster for the whole binary: started before the first test, stopped
// after the last (a cluster per suite would cost ~10 s each).
class CephEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    cluster_ = test::CephCluster::Start();
    std::printf("ceph cluster started in %.1f s\n", cluster_->start_seconds());
  }
  void TearDown() override { cluster_.reset(); }
  static test::CephCluster& cluster() { return *cluster_; }

 private:
  static inline std::unique_ptr<test::CephCluster> cluster_;
};
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

class RadosObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    ns_ = std::string("rados-") + info->name();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  // Another client (another process) of the same namespace.
  std::unique_ptr<RadosObjectStore> Open() {
    auto store = RadosObjectStore::Open(Options(ns_));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::string ns_;
  std::unique_ptr<RadosObjectStore> store_;
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

TEST_F(RadosObjectStoreTest, ObjectsOverTheLimitAreRefusedByName) {
  EXPECT_EQ(store_->max_object_bytes(), 90u << 20);
  const std::string big(store_->max_object_bytes() + 1, 'x');
  const absl::Status put = store_->Put("p/big", big);
  EXPECT_TRUE(absl::IsInvalidArgument(put)) << put;
  EXPECT_THAT(std::string(put.message()), HasSubstr("p/big"));
  EXPECT_THAT(std::string(put.message()), HasSubstr("osd_max_write_size"));
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Publish("p/big", big)));
  auto writer = store_->OpenWriter("p/big");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(std::string_view(big).substr(0, 1 << 20)).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*writer)->Append(std::string_view(big).substr(1 << 20))));
  EXPECT_FALSE(*store_->Exists("p/big"));
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
