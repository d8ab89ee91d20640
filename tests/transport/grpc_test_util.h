// Helpers for the gRPC transport tests: test certificates, a vault in a
// temporary directory behind a loopback receiver, backups through the real
// stream producer, remote restore, and a TCP proxy that cuts connections.
#ifndef CBTD_TESTS_TRANSPORT_GRPC_TEST_UTIL_H_
#define CBTD_TESTS_TRANSPORT_GRPC_TEST_UTIL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "receiver/local_vault.h"
#include "receiver/vault.h"
#include "receiver/vault_service_backend.h"
#include "tests/common/temp_dir.h"
#include "transport/grpc_client.h"
#include "transport/grpc_server.h"
#include "transport/stream_producer.h"

namespace cbtd::transport::testing {

std::string ReadOrDie(const std::string& path);

// scripts/make-certs.sh into `dir` with hosts "hosta", "hostb" and "admin".
// Also makes `dir`/other (an unrelated CA with its own "hosta") and
// `dir`/expired.{crt,key} (hosta, signed by the right CA, expired).
void MakeTestCerts(const std::string& dir);

// PEM material for a client named `name` from `dir`.
ClientOptions TlsClient(const std::string& dir, const std::string& name,
                        int port);

// A vault in a temp dir and the service backend over it. Counts commits.
class TestVault : public ReceiveBackend {
 public:
  TestVault();
  absl::StatusOr<std::unique_ptr<UploadSession>> OpenSession(
      const stream::Header& header) override;
  absl::StatusOr<std::vector<VersionSummary>> ListVersions(
      const std::string& h, const std::string& v) override {
    return backend_->ListVersions(h, v);
  }
  absl::StatusOr<VersionIndex> GetIndex(const std::string& h,
                                        const std::string& v,
                                        const std::string& id) override {
    return backend_->GetIndex(h, v, id);
  }
  absl::StatusOr<std::unique_ptr<IndexEntrySource>> OpenIndex(
      const std::string& h, const std::string& v,
      const std::string& id) override {
    return backend_->OpenIndex(h, v, id);
  }
  absl::StatusOr<std::unique_ptr<ChunkSource>> OpenChunks(
      const std::string& h, const std::string& v,
      const std::string& id) override {
    return backend_->OpenChunks(h, v, id);
  }
  absl::StatusOr<PruneOutcome> Prune(const std::string& h, const std::string& v,
                                     const PruneRule& rule, bool dry_run,
                                     const PruneScope& scope) override {
    return backend_->Prune(h, v, rule, dry_run, scope);
  }
  absl::Status CommitGroup(const std::string& h,
                           const GroupCommit& commit) override {
    return backend_->CommitGroup(h, commit);
  }
  absl::StatusOr<int64_t> HoldVersion(const std::string& h,
                                      const std::string& volume,
                                      const std::string& version,
                                      uint32_t seconds) override {
    return backend_->HoldVersion(h, volume, version, seconds);
  }

  receiver::Vault& vault() { return *local_.vault; }
  // The file behind an object key.
  std::string ObjectPath(const std::string& key) const {
    return dir_ + "/vault/" + key;
  }
  // Every object key in the store, sorted (to show "vault unchanged").
  std::vector<std::string> Objects();
  int commits() const { return commits_.load(); }

 private:
  const test::TempDir tmp_{"cbtd_grpc_", ::testing::TempDir()};
  const std::string dir_ = tmp_.path();
  receiver::OpenedVault local_;
  std::unique_ptr<receiver::VaultServiceBackend> backend_;
  std::atomic<int> commits_{0};
};

// Deterministic pseudo-random bytes with some zero chunks.
std::string VolumeBytes(size_t size, uint32_t seed);

inline constexpr uint32_t kTestChunkBytes = 64 * 1024;

// Backs `data` up as host/volume@version through `client`; a full when
// `base` is null, else an incremental over `changed`.
absl::StatusOr<ProduceResult> Backup(
    RemoteClient& client, const std::string& data, const std::string& host,
    const std::string& volume, const std::string& version,
    const VersionIndex* base, const cbt::ExtentSet& changed,
    SendProgress* progress = nullptr, bool force_full = false);
// The same over a streamed base (RemoteClient::OpenIndex).
absl::StatusOr<ProduceResult> BackupOnStream(
    RemoteClient& client, const std::string& data, const std::string& host,
    const std::string& volume, const std::string& version,
    IndexEntrySource* base, const cbt::ExtentSet& changed,
    SendProgress* progress = nullptr, bool force_full = false);

// Collects a produced stream's records (to replay or forge them).
class VectorSink : public RecordSink {
 public:
  absl::Status Put(const stream::Record& r) override {
    records.push_back(r);
    return absl::OkStatus();
  }
  absl::Status Finish() override { return absl::OkStatus(); }
  std::vector<stream::Record> records;
};

// Fetches the index and chunks of a version and rebuilds the volume bytes.
absl::StatusOr<std::string> RemoteRestore(RemoteClient& client,
                                          const std::string& host,
                                          const std::string& volume,
                                          const std::string& version);

// Forwards 127.0.0.1:port() to 127.0.0.1:upstream_port and, until it has
// cut `max_cuts` connections, closes each connection after a random number
// of bytes in [min_bytes, max_bytes] (both directions counted).
class CuttingProxy {
 public:
  CuttingProxy(int upstream_port, uint64_t min_bytes, uint64_t max_bytes,
               int max_cuts, uint32_t seed);
  ~CuttingProxy();
  int port() const { return port_; }
  int cuts() const { return cuts_.load(); }

 private:
  void AcceptLoop();
  void Pump(int client_fd, int upstream_fd, uint64_t budget);

  int upstream_port_;
  uint64_t min_bytes_, max_bytes_;
  int max_cuts_;
  common::UniqueFd listen_fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> cuts_{0};
  std::mutex mu_;
  uint32_t seed_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace cbtd::transport::testing

#endif  // CBTD_TESTS_TRANSPORT_GRPC_TEST_UTIL_H_
