#include "tests/transport/grpc_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/exec.h"
#include "gtest/gtest.h"
#include "transport/stream_codec.h"
#include "transport/stream_index.h"

namespace cbtd::transport::testing {

std::string ReadOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {
void RunOk(const std::vector<std::string>& argv) {
  auto r = common::RunCommandOk(argv);
  ASSERT_TRUE(r.ok()) << r.status();
}
}  // namespace

void MakeTestCerts(const std::string& dir) {
  RunOk({"scripts/make-certs.sh", dir, "--host", "hosta", "--host", "hostb"});
  RunOk({"scripts/make-certs.sh", dir + "/other", "--host", "hosta"});
  // hosta, signed by the right CA, but expired yesterday.
  RunOk({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", dir + "/expired.key"});
  RunOk({"openssl", "req", "-new", "-key", dir + "/expired.key", "-subj",
         "/CN=hosta", "-out", dir + "/expired.csr"});
  RunOk({"openssl", "x509", "-req", "-in", dir + "/expired.csr", "-CA",
         dir + "/ca.crt", "-CAkey", dir + "/ca.key", "-CAcreateserial", "-days",
         "-1", "-out", dir + "/expired.crt"});
}

ClientOptions TlsClient(const std::string& dir, const std::string& name,
                        int port) {
  ClientOptions o;
  o.target = absl::StrCat("127.0.0.1:", port);
  o.ca_pem = ReadOrDie(dir + "/ca.crt");
  o.cert_pem = ReadOrDie(dir + "/" + name + ".crt");
  o.key_pem = ReadOrDie(dir + "/" + name + ".key");
  o.backoff_initial = std::chrono::milliseconds(20);
  o.backoff_max = std::chrono::milliseconds(200);
  o.retry_budget = std::chrono::seconds(20);
  return o;
}

namespace {

class CountingUpload : public UploadSession {
 public:
  CountingUpload(std::unique_ptr<UploadSession> inner, std::atomic<int>* n)
      : inner_(std::move(inner)), commits_(n) {}
  absl::StatusOr<std::vector<bool>> HaveChunks(
      std::span<const ChunkHash> hashes) override {
    return inner_->HaveChunks(hashes);
  }
  absl::Status Apply(const stream::Record& r) override {
    return inner_->Apply(r);
  }
  absl::StatusOr<CommitResult> Commit(const stream::Trailer& t) override {
    auto r = inner_->Commit(t);
    if (r.ok()) ++*commits_;
    return r;
  }
  void Abort() override { inner_->Abort(); }

 private:
  std::unique_ptr<UploadSession> inner_;
  std::atomic<int>* commits_;
};

}  // namespace

TestVault::TestVault() {
  auto opened = receiver::OpenLocalVault(dir_ + "/vault", true);
  EXPECT_TRUE(opened.ok()) << opened.status();
  local_ = std::move(*opened);
  backend_ = std::make_unique<receiver::VaultServiceBackend>(*local_.vault);
}

absl::StatusOr<std::unique_ptr<UploadSession>> TestVault::OpenSession(
    const stream::Header& header) {
  auto s = backend_->OpenSession(header);
  if (!s.ok()) return s.status();
  return std::make_unique<CountingUpload>(std::move(*s), &commits_);
}

std::vector<std::string> TestVault::Objects() {
  std::vector<std::string> out;
  for (const char* prefix : {"tenants", "hosts"}) {
    auto keys = local_.store->List(prefix);
    if (keys.ok()) out.insert(out.end(), keys->begin(), keys->end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string VolumeBytes(size_t size, uint32_t seed) {
  std::string data(size, '\0');
  std::mt19937 rng(seed);
  for (size_t chunk = 0; chunk * kTestChunkBytes < size; ++chunk) {
    if (chunk % 7 == 3) continue;  // leave some chunks zero
    const size_t end = std::min(size, (chunk + 1) * kTestChunkBytes);
    for (size_t i = chunk * kTestChunkBytes; i < end; i += 4) {
      uint32_t v = rng();
      std::memcpy(&data[i], &v, std::min<size_t>(4, end - i));
    }
  }
  return data;
}

absl::StatusOr<ProduceResult> BackupOnStream(
    RemoteClient& client, const std::string& data, const std::string& host,
    const std::string& volume, const std::string& version,
    IndexEntrySource* base, const cbt::ExtentSet& changed,
    SendProgress* progress, bool force_full) {
  common::MemoryBlockReader dev(data);
  ProducerOptions o;
  o.host = host;
  o.volume = volume;
  o.version_id = version;
  o.chunk_size_bytes = kTestChunkBytes;
  o.full = force_full;
  auto sink = client.NewSink();
  auto r = ProduceStream(dev, changed, cbt::ExtentSet(), base, o, *sink);
  if (progress) *progress = sink->progress();
  return r;
}

absl::StatusOr<ProduceResult> Backup(
    RemoteClient& client, const std::string& data, const std::string& host,
    const std::string& volume, const std::string& version,
    const VersionIndex* base, const cbt::ExtentSet& changed,
    SendProgress* progress, bool force_full) {
  std::unique_ptr<IndexEntrySource> entries = base ? SourceOf(*base) : nullptr;
  return BackupOnStream(client, data, host, volume, version, entries.get(),
                        changed, progress, force_full);
}

absl::StatusOr<std::string> RemoteRestore(RemoteClient& client,
                                          const std::string& host,
                                          const std::string& volume,
                                          const std::string& version) {
  auto index = client.GetIndex(host, volume, version);
  if (!index.ok()) return index.status();
  std::vector<ChunkHash> wanted;
  std::set<ChunkHash> seen;
  for (const auto& e : index->entries) {
    if (!IsZeroEntry(e) && seen.insert(e).second) wanted.push_back(e);
  }
  auto chunks = client.GetChunks(host, volume, version, wanted);
  if (!chunks.ok()) return chunks.status();
  std::map<ChunkHash, std::string> by_hash;
  for (size_t i = 0; i < wanted.size(); ++i) by_hash[wanted[i]] = (*chunks)[i];
  std::string out;
  for (uint64_t i = 0; i < index->entries.size(); ++i) {
    const uint32_t len =
        ChunkLength(index->volume_size_bytes, index->chunk_size_bytes, i);
    if (IsZeroEntry(index->entries[i])) {
      out.append(len, '\0');
    } else {
      out += by_hash[index->entries[i]];
    }
  }
  return out;
}

// --- CuttingProxy ----------------------------------------------------------

CuttingProxy::CuttingProxy(int upstream_port, uint64_t min_bytes,
                           uint64_t max_bytes, int max_cuts, uint32_t seed)
    : upstream_port_(upstream_port),
      min_bytes_(min_bytes),
      max_bytes_(max_bytes),
      max_cuts_(max_cuts),
      seed_(seed) {
  listen_fd_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(
      bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr),
      0);
  EXPECT_EQ(listen(listen_fd_.get(), 16), 0);
  socklen_t len = sizeof addr;
  getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

CuttingProxy::~CuttingProxy() {
  stop_ = true;
  acceptor_.join();
  std::lock_guard l(mu_);
  for (auto& t : threads_) t.join();
}

void CuttingProxy::AcceptLoop() {
  std::mt19937_64 rng(seed_);
  while (!stop_) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    common::UniqueFd c(
        accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    common::UniqueFd u(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    if (connect(u.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
        0) {
      continue;
    }
    std::uniform_int_distribution<uint64_t> d(min_bytes_, max_bytes_);
    const uint64_t budget = d(rng);
    std::lock_guard l(mu_);
    // The thread owns both sockets; they close when Pump returns.
    threads_.emplace_back([this, c = std::move(c), u = std::move(u), budget] {
      Pump(c.get(), u.get(), budget);
    });
  }
}

void CuttingProxy::Pump(int a, int b, uint64_t budget) {
  uint64_t moved = 0;
  char buf[16384];
  bool open = true;
  while (open && !stop_) {
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (poll(p, 2, 50) <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const int from = i == 0 ? a : b;
      const int to = i == 0 ? b : a;
      ssize_t n = read(from, buf, sizeof buf);
      if (n <= 0) {
        open = false;
        break;
      }
      if (cuts_.load() < max_cuts_ && moved + n > budget) {
        // Forward part of it, then cut: the peer sees a broken stream at
        // an arbitrary byte, mid-record.
        const size_t part = budget > moved ? budget - moved : 0;
        if (part > 0) (void)!write(to, buf, part);
        ++cuts_;
        open = false;
        break;
      }
      moved += n;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, n - off);
        if (w <= 0) {
          open = false;
          break;
        }
        off += w;
      }
    }
  }
  // Abortive close (RST) on both sides, like a dropped connection.
  linger lg{1, 0};
  setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace cbtd::transport::testing
