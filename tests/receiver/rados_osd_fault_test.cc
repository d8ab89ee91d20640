// A receive into a vault on RADOS while its only OSD crashes (SIGKILL) and
// comes back on its data (bluestore), on a real cluster the binary starts:
// the receive fails cleanly, or completes once the OSD is back; never a
// partial version (issue 15). Afterwards the vault takes the stream again,
// restores it byte-equal and verifies clean.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "cbt/extent_set.h"
#include "common/block_reader.h"
#include "receiver/rados_chunk_index.h"
#include "receiver/rados_object_store.h"
#include "receiver/receive_session.h"
#include "receiver/vault.h"
#include "receiver/vault_restore.h"
#include "receiver/verify.h"
#include "restore/restore.h"
#include "tests/common/ceph_cluster.h"
#include "tests/common/temp_dir.h"
#include "transport/stream_codec.h"
#include "transport/stream_producer.h"

namespace cbtd::receiver {
namespace {

constexpr uint32_t kChunk = 64 * 1024;
constexpr size_t kVolumeBytes = 48u << 20;  // three packs of 16 MiB
const VolumeName kVol{"host1", "vol1"};

class BluestoreEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { cluster_ = test::CephCluster::Start("bluestore"); }
  void TearDown() override { cluster_.reset(); }
  static test::CephCluster& cluster() { return *cluster_; }

 private:
  static inline std::unique_ptr<test::CephCluster> cluster_;
};
::testing::Environment* const kCeph =
    ::testing::AddGlobalTestEnvironment(new BluestoreEnvironment);

// The stream's bytes, calling `at_third` once a third of them was read.
class TrippingSource : public transport::ByteSource {
 public:
  TrippingSource(std::string data, std::function<void()> at_third)
      : data_(std::move(data)), at_third_(std::move(at_third)) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> buf) override {
    if (at_third_ && at_ >= data_.size() / 3) {
      at_third_();
      at_third_ = nullptr;
    }
    const size_t n = std::min(buf.size(), data_.size() - at_);
    std::copy_n(data_.data() + at_, n, buf.data());
    at_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t at_ = 0;
  std::function<void()> at_third_;
};

class RadosOsdFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    Open(info->name(), 5);
    std::mt19937_64 rng(42);
    volume_.resize(kVolumeBytes);
    for (char& c : volume_) c = static_cast<char>(rng());
    stream_ = Produce();
  }

  void Open(const std::string& ns, int op_timeout_seconds) {
    vault_.reset();
    index_.reset();
    store_.reset();
    RadosStoreOptions options;
    options.conf_path = BluestoreEnvironment::cluster().conf_path();
    options.client_id = "cbtd";
    options.pool = test::CephCluster::kPool;
    options.ns = ns;
    options.op_timeout_seconds = op_timeout_seconds;
    auto store = RadosObjectStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    index_ =
        std::make_unique<RadosChunkIndex>(store_->ioctx(), store_->where());
    vault_ = std::make_unique<Vault>(*store_, index_.get());
  }

  std::string Produce() {
    common::MemoryBlockReader dev(volume_);
    transport::VectorRecordSink sink;
    transport::ProducerOptions opts;
    opts.host = kVol.host;
    opts.volume = kVol.volume;
    opts.version_id = "v1";
    opts.chunk_size_bytes = kChunk;
    opts.created_unix_ms = 1700000000000;
    auto r = transport::ProduceStream(dev, {}, {}, nullptr, opts, sink);
    EXPECT_TRUE(r.ok()) << r.status();
    return transport::FrameRecords(sink.records);
  }

  absl::StatusOr<ReceiveResult> Receive(std::function<void()> at_third) {
    transport::StreamReader reader(
        std::make_unique<TrippingSource>(stream_, std::move(at_third)));
    return ReceiveStream(*vault_, reader);
  }

  std::vector<std::string> Versions() {
    auto v = vault_->ListVersions(kVol);
    if (absl::IsNotFound(v.status())) return {};
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::vector<std::string>{};
  }

  // The verified restore of v1 equals the volume, and verify finds the
  // vault sound.
  void ExpectRestoresAndVerifies() {
    const std::string path = dir_.path() + "/restored";
    auto target = restore::OpenRestoreTarget(path);
    ASSERT_TRUE(target.ok()) << target.status();
    restore::RestoreOptions opts;
    opts.verify = true;
    auto restored = RestoreVersion(*vault_, kVol, "v1", **target, opts);
    target->reset();
    ASSERT_TRUE(restored.ok()) << restored.status();
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_TRUE(bytes.str() == volume_) << "restored bytes differ";
    auto report = VerifyVault(*vault_, VerifyScope{});
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->ok());
    EXPECT_EQ(report->versions_checked, 1u);
  }

  test::TempDir dir_{"cbtd-osd-fault-"};
  std::string volume_, stream_;
  std::unique_ptr<RadosObjectStore> store_;
  std::unique_ptr<RadosChunkIndex> index_;
  std::unique_ptr<Vault> vault_;
};

// The OSD stays down past the client's op timeout: the receive fails with
// UNAVAILABLE and publishes nothing; sent again once the OSD is back, the
// version is whole.
TEST_F(RadosOsdFaultTest, AnOsdDownPastTheTimeoutFailsTheReceiveCleanly) {
  auto& cluster = BluestoreEnvironment::cluster();
  const auto start = std::chrono::steady_clock::now();
  auto r = Receive([&] { cluster.KillOsd(); });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("the receive failed after %.1f s: %s\n", seconds,
              r.status().ToString().c_str());
  cluster.StartOsd();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_LT(seconds, 60) << "the receive hung on the dead OSD";
  EXPECT_TRUE(Versions().empty()) << "a version was published";

  auto again = Receive(nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectRestoresAndVerifies();
}

// The OSD is back within the op timeout: the receive waits for it and
// completes, and the version is whole.
TEST_F(RadosOsdFaultTest, AnOsdBackWithinTheTimeoutLetsTheReceiveComplete) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  Open(info->name(), 120);
  auto& cluster = BluestoreEnvironment::cluster();
  std::thread restart;
  auto r = Receive([&] {
    cluster.KillOsd();
    restart = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      cluster.StartOsd();
    });
  });
  if (restart.joinable()) restart.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Versions(), std::vector<std::string>{"v1"});
  ExpectRestoresAndVerifies();
}

}  // namespace
}  // namespace cbtd::receiver
