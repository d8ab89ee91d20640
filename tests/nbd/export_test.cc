// Exports end to end on the host, no kernel needed: a real receiver (gRPC on
// a unix socket, the vault behind it real), real nbdkit running cbtd's
// plugin, and NBD clients (nbdcopy, qemu-io) reading and writing through
// it. An encrypted version reads back byte-equal; a writable export keeps
// its writes out of the vault; a receiver gone gives the reader an error,
// not a hang, and the export recovers when it returns; the wrong key, an
// unknown version and an ended lifetime are handled.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "common/exec.h"
#include "common/host_name.h"
#include "nbd/exports.h"
#include "receiver/vault_service_backend.h"
#include "tests/receiver/vault_fixture.h"
#include "transport/grpc_server.h"
#include "transport/key_file.h"

namespace cbtd::receiver {
namespace {

using ::testing::HasSubstr;

class ExportTest : public testing::VaultFixture {
 protected:
  void SetUp() override {
    VaultFixture::SetUp();
    backend_ = std::make_unique<VaultServiceBackend>(*vault_);
    StartReceiver();
    auto key = transport::TenantKey::Generate();
    ASSERT_TRUE(key.ok());
    key_ = *key;
    ASSERT_TRUE(transport::CreateKeyFile(dir_ + "/key", *key_, 1).ok());
    std::ofstream(dir_ + "/cbtd.conf")
        << "[agent]\nstate_dir = " << dir_ << "/state\n"
        << "encryption = aes-256-gcm\nkey_file = " << dir_ << "/key\n"
        << "[receiver]\naddress = unix:" << dir_ << "/rx.sock\n";
    paths_.run_dir = dir_ + "/run";
    paths_.plugin = CBTD_TEST_NBDKIT_PLUGIN;
    spec_.config_path = dir_ + "/cbtd.conf";
    spec_.volume = "vol1";
    spec_.version = "v1";
    spec_.read_timeout = std::chrono::seconds(2);

    // v1 of this host's vol1, sealed under the key: 40 chunks and a short
    // one, a zero chunk.
    vol_ = RandomVolume(40 * kChunk + 5000, 3);
    transport::ProducerOptions opts;
    opts.host = common::ShortHostName();
    opts.key = key_;
    auto r = Receive(Produce(vol_, nullptr, {}, "v1", opts));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  void TearDown() override {
    if (auto list = nbd::ListExports(paths_.run_dir); list.ok()) {
      for (const nbd::ExportRecord& r : *list) {
        (void)nbd::StopExport(paths_.run_dir, r.name);
      }
    }
    server_.reset();
    VaultFixture::TearDown();
  }

  void StartReceiver() {
    transport::ServerOptions o;
    o.listen_address = "unix:" + dir_ + "/rx.sock";
    o.insecure = true;
    auto server = transport::ReceiverServer::Start(backend_.get(), o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // The whole export as nbdcopy reads it, or the error it exited with.
  absl::StatusOr<std::string> ReadExport(const nbd::ExportRecord& r) {
    const std::string out = dir_ + "/copy.img";
    std::filesystem::remove(out);
    common::CommandOptions o;
    o.timeout = std::chrono::seconds(60);
    auto run = common::RunCommandOk({"nbdcopy", r.uri, out}, o);
    if (!run.ok()) return run.status();
    return ReadWholeFile(out);
  }

  std::unique_ptr<VaultServiceBackend> backend_;
  std::unique_ptr<transport::ReceiverServer> server_;
  std::optional<transport::TenantKey> key_;
  nbd::ExportPaths paths_;
  nbd::ExportSpec spec_;
  std::string vol_;
};

TEST_F(ExportTest, EncryptedVersionReadsByteEqualThroughNbd) {
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->name, "vol1-v1");
  EXPECT_FALSE(r->writable);
  auto bytes = ReadExport(*r);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == vol_);
  // qemu-img agrees, comparing with the volume's bytes on its own.
  std::ofstream(dir_ + "/vol.img", std::ios::binary) << vol_;
  EXPECT_TRUE(common::RunCommandOk({"qemu-img", "compare", "-f", "raw", "-F",
                                    "raw", dir_ + "/vol.img", r->uri})
                  .ok());
  // A read-only export refuses writes.
  auto write = common::RunCommand(
      {"qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4096", r->uri});
  ASSERT_TRUE(write.ok());
  EXPECT_NE(write->exit_code, 0);

  auto list = nbd::ListExports(paths_.run_dir);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].uri, r->uri);
  ASSERT_TRUE(nbd::StopExport(paths_.run_dir, r->name).ok());
  EXPECT_TRUE(nbd::ListExports(paths_.run_dir)->empty());
  EXPECT_FALSE(std::filesystem::exists(r->dir));
  EXPECT_TRUE(absl::IsNotFound(nbd::StopExport(paths_.run_dir, r->name)));
}

TEST_F(ExportTest, TcpExportReadsByteEqual) {
  // A port free now (bound and released: the kernel does not hand it out
  // again at once).
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  spec_.tcp_address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->uri, "nbd://" + spec_.tcp_address);
  auto bytes = ReadExport(*r);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == vol_);
  spec_.unix_socket = dir_ + "/also.sock";
  EXPECT_TRUE(
      absl::IsInvalidArgument(nbd::StartExport(paths_, spec_).status()));
}

TEST_F(ExportTest, WritableExportKeepsItsWritesOutOfTheVault) {
  const auto before = Listing();
  spec_.writable = true;
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  auto write = common::RunCommandOk(
      {"qemu-io", "-f", "raw", "-c", "write -P 0xab 5000 70000", r->uri});
  ASSERT_TRUE(write.ok()) << write.status();
  std::string expected = vol_;
  std::fill(expected.begin() + 5000, expected.begin() + 75000, '\xab');
  auto bytes = ReadExport(*r);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == expected);
  // Not one object of the vault changed; the one thing the export adds is
  // the hold on its version (released when it stops).
  auto during = Listing();
  std::erase_if(during, [](const auto& kv) {
    return kv.first.find("/held/") != std::string::npos;
  });
  EXPECT_EQ(during, before);

  // Stopped, the overlay is gone (a new export serves the version again)
  // and so is the hold: the vault is exactly as before.
  ASSERT_TRUE(nbd::StopExport(paths_.run_dir, r->name).ok());
  EXPECT_EQ(Listing(), before);
  r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  bytes = ReadExport(*r);
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(*bytes == vol_);
}

// The decision for a version pruned while exported: the prune keeps it
// (the export holds it at the receiver while it serves) and removes it once
// the export has stopped.
TEST_F(ExportTest, PruneKeepsAnExportedVersionUntilTheExportStops) {
  transport::ProducerOptions opts;
  opts.host = common::ShortHostName();
  opts.key = key_;
  opts.created_unix_ms = 1800000000000;
  ASSERT_TRUE(
      Receive(Produce(RandomVolume(8 * kChunk, 4), nullptr, {}, "v2", opts))
          .ok());
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  const transport::PruneRule keep_newest{.keep_last = 1};
  auto pruned =
      backend_->Prune(common::ShortHostName(), "vol1", keep_newest, false, {});
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_THAT(pruned->kept, ::testing::ElementsAre("v1", "v2"));
  EXPECT_TRUE(pruned->removed.empty());
  auto bytes = ReadExport(*r);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == vol_);

  ASSERT_TRUE(nbd::StopExport(paths_.run_dir, r->name).ok());
  pruned =
      backend_->Prune(common::ShortHostName(), "vol1", keep_newest, false, {});
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_THAT(pruned->removed, ::testing::ElementsAre("v1"));
}

TEST_F(ExportTest, ReceiverGoneGivesReadErrorsAndTheExportRecovers) {
  spec_.read_timeout = std::chrono::seconds(1);
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  server_.reset();
  const auto t0 = std::chrono::steady_clock::now();
  auto failed = ReadExport(*r);
  EXPECT_FALSE(failed.ok());
  // An error within the read timeout (1 s) and its retries, not a hang.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  StartReceiver();
  auto bytes = ReadExport(*r);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == vol_);
}

TEST_F(ExportTest, StartRefusesWhatCannotBeServedAndLeavesNothing) {
  // Another key in the key file: refused before serving, naming both.
  std::filesystem::remove(dir_ + "/key");
  auto other = transport::TenantKey::Generate();
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(transport::CreateKeyFile(dir_ + "/key", *other, 1).ok());
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(key_->fingerprint()));
  EXPECT_THAT(r.status().message(), HasSubstr(other->fingerprint()));

  spec_.version = "v9";
  r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("v9"));
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(paths_.run_dir)) {
    ADD_FAILURE() << e.path() << " was left behind";
  }

  spec_.name = "../escape";
  EXPECT_TRUE(
      absl::IsInvalidArgument(nbd::StartExport(paths_, spec_).status()));
}

TEST_F(ExportTest, NameInUseIsRefusedAndLifetimeEndsTheExport) {
  spec_.lifetime = std::chrono::seconds(2);
  auto r = nbd::StartExport(paths_, spec_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->expires_unix, r->created_unix);
  auto again = nbd::StartExport(paths_, spec_);
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!nbd::ListExports(paths_.run_dir)->empty() &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(nbd::ListExports(paths_.run_dir)->empty());
  EXPECT_FALSE(std::filesystem::exists(r->dir));
}

}  // namespace
}  // namespace cbtd::receiver
