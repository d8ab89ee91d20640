// Drives the control API in-process over a unix socket in a temp directory,
// with the real Agent, StateStore and JobRunner over fake ports.
#include "agent/control_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <future>

#include "cbtctl/commands.h"
#include "common/cli.h"
#include "common/unique_fd.h"
#include "control/control_client.h"
#include "tests/agent/fake_ports.h"
#include "tests/common/temp_dir.h"

namespace cbtd::agent {
namespace {

using control::ControlClient;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
[receiver]
address = unix:/run/cbt-receiver.sock
[volume.a]
path = /dev/vg/a
schedule = every 1h
[volume.b]
path = /dev/vg/b
[group.g]
members = a b
)";

class ControlServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = dir_ + "/cbtd.sock";
    auto store = StateStore::Open(dir_ + "/state.db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto config = ParseConfig("cbtd.conf", kConfig);
    ASSERT_TRUE(config.ok()) << config.status();
    agent_ = std::make_unique<Agent>(
        *config, *store_,
        BackupPorts{&snapshots_, &tracker_, &sender_, &retention_},
        [] { return absl::Now(); }, absl::UTCTimeZone());
    ASSERT_TRUE(agent_->Start().ok());
    auto server = ControlServer::Start(socket_, *agent_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = std::make_unique<ControlClient>(socket_);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    agent_.reset();
  }

  // Polls until run `id` is no longer running.
  control::Run WaitForRun(int64_t id) {
    for (int i = 0; i < 500; ++i) {
      control::ListRunsRequest req;
      req.set_limit(100);
      auto runs = client_->ListRuns(req);
      EXPECT_TRUE(runs.ok()) << runs.status();
      for (const control::Run& r : runs->runs()) {
        if (r.id() == id && r.result() != "running") return r;
      }
      usleep(10000);
    }
    ADD_FAILURE() << "run " << id << " did not finish";
    return {};
  }

  const test::TempDir tmp_{"cbtd-ctl-", "/tmp"};
  const std::string dir_ = tmp_.path();
  std::string socket_;
  std::unique_ptr<StateStore> store_;
  testing::FakeSnapshots snapshots_;
  testing::FakeTracker tracker_;
  testing::FakeSender sender_;
  testing::FakeRetention retention_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<ControlServer> server_;
  std::unique_ptr<ControlClient> client_;
};

TEST_F(ControlServiceTest, SocketIsRootOnly) {
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(ControlServiceTest, NonRootCallerIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to another user";
  // The temp dir is 0700 like /run/cbtd; let the child reach the socket
  // itself so only the socket's own mode can refuse it.
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    const int rc =
        connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    _exit(rc == 0 ? 0 : (errno == EACCES ? 13 : 20));
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 13) << "expected EACCES from connect";

  // The same connect as root works, so the refusal above was the mode.
  const common::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
}

TEST_F(ControlServiceTest, BackupNowRunsAndShowsInRunsAndVolumes) {
  control::BackupNowRequest req;
  req.set_target("a");
  auto resp = client_->BackupNow(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->run_ids_size(), 1);
  const control::Run run = WaitForRun(resp->run_ids(0));
  EXPECT_EQ(run.result(), "succeeded") << run.error();
  EXPECT_EQ(run.volume(), "a");
  EXPECT_EQ(run.trigger(), "api");
  EXPECT_EQ(run.version_id(), "a-v1");

  auto volumes = client_->ListVolumes();
  ASSERT_TRUE(volumes.ok()) << volumes.status();
  ASSERT_EQ(volumes->volumes_size(), 2);
  const control::Volume& a = volumes->volumes(0);
  EXPECT_EQ(a.name(), "a");
  EXPECT_EQ(a.group(), "g");
  EXPECT_EQ(a.schedule(), "every 1h");
  EXPECT_EQ(a.base_version(), "a-v1");
  EXPECT_EQ(a.last_run().id(), run.id());
  EXPECT_GT(a.next_run_unix(), 0);
  EXPECT_EQ(volumes->volumes(1).base_version(), "");
}

TEST_F(ControlServiceTest, ErrorsKeepTheirCodes) {
  control::BackupNowRequest req;
  req.set_target("nope");
  auto resp = client_->BackupNow(req);
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(resp.status().message()), HasSubstr("'nope'"));
  EXPECT_EQ(client_->Cancel(12345).code(), absl::StatusCode::kNotFound);
}

TEST_F(ControlServiceTest, BusyVolumeIsRefusedAndCancelStopsTheRun) {
  std::promise<void> in_send;
  std::atomic<bool> signalled{false};
  sender_.during_send = [&](RunControl& c) {
    if (!signalled.exchange(true)) in_send.set_value();
    while (!c.cancelled()) usleep(1000);
  };
  control::BackupNowRequest req;
  req.set_target("g");
  auto first = client_->BackupNow(req);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->run_ids_size(), 2);
  in_send.get_future().wait();

  // a is busy, whether asked for directly or through its group.
  req.set_target("a");
  EXPECT_EQ(client_->BackupNow(req).status().code(),
            absl::StatusCode::kFailedPrecondition);

  control::ListRunsRequest active;
  active.set_active_only(true);
  auto runs = client_->ListRuns(active);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->runs_size(), 2);
  ASSERT_TRUE(client_->Cancel(first->run_ids(1)).ok());
  EXPECT_EQ(WaitForRun(first->run_ids(0)).result(), "cancelled");
  EXPECT_EQ(WaitForRun(first->run_ids(1)).result(), "cancelled");
}

TEST_F(ControlServiceTest, HypervisorTriggerReturnsSnapshotsThenBacksUp) {
  control::ConsistencyPointRequest req;
  req.set_target("g");
  req.set_backup(true);
  auto resp = client_->ConsistencyPoint(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->snapshots_size(), 2);
  EXPECT_EQ(resp->snapshots(0).volume(), "a");
  ASSERT_EQ(resp->run_ids_size(), 2);
  const control::Run run = WaitForRun(resp->run_ids(1));
  EXPECT_EQ(run.result(), "succeeded") << run.error();
  EXPECT_EQ(run.trigger(), "hypervisor");
  EXPECT_EQ(run.group(), "g");
}

TEST_F(ControlServiceTest, HypervisorTriggerReportsAFailedPoint) {
  snapshots_.take_error = absl::DeadlineExceededError("freeze timed out");
  control::ConsistencyPointRequest req;
  req.set_target("g");
  req.set_backup(true);
  auto resp = client_->ConsistencyPoint(req);
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(resp.status().message()),
              HasSubstr("freeze timed out"));
}

TEST_F(ControlServiceTest, StatusAnswers) {
  auto status = client_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->volumes(), 2);
  EXPECT_EQ(status->groups(), 1);
  EXPECT_EQ(status->receiver(), "unix:/run/cbt-receiver.sock");
}

// Runs a cbtctl command in-process against the test's socket.
int Cbtctl(int (*command)(std::span<char*>), std::vector<std::string> args,
           const std::string& socket, std::string* out = nullptr) {
  args.push_back("--socket=" + socket);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();
  const int exit = command(argv);
  const std::string captured = ::testing::internal::GetCapturedStdout();
  if (out != nullptr) *out = captured;
  return exit;
}

TEST_F(ControlServiceTest, CbtctlBackupWaitsAndExitsByResult) {
  std::string out;
  EXPECT_EQ(Cbtctl(cbtctl::RunBackupCommand,
                   {"backup", "a", "--wait", "--json"}, socket_, &out),
            common::kExitOk);
  EXPECT_THAT(out, HasSubstr("\"result\":\"succeeded\""));

  sender_.error = absl::UnavailableError("receiver down");
  EXPECT_EQ(Cbtctl(cbtctl::RunBackupCommand, {"backup", "a", "--wait"}, socket_,
                   &out),
            common::kExitFailure);
  EXPECT_THAT(out, HasSubstr("receiver down"));

  EXPECT_EQ(Cbtctl(cbtctl::RunBackupCommand, {"backup", "zz"}, socket_),
            common::kExitRefused);
  EXPECT_EQ(Cbtctl(cbtctl::RunBackupCommand, {"backup"}, socket_),
            common::kExitUsage);
}

TEST_F(ControlServiceTest, CbtctlVolumesRunsStatusCancel) {
  std::string out;
  ASSERT_EQ(
      Cbtctl(cbtctl::RunBackupCommand, {"backup", "b", "--wait"}, socket_),
      common::kExitOk);
  EXPECT_EQ(Cbtctl(cbtctl::RunVolumesCommand, {"volumes"}, socket_, &out),
            common::kExitOk);
  EXPECT_THAT(out, HasSubstr("b-v1"));
  EXPECT_EQ(
      Cbtctl(cbtctl::RunVolumesCommand, {"volumes", "--json"}, socket_, &out),
      common::kExitOk);
  EXPECT_THAT(out, HasSubstr("\"base_version\":\"b-v1\""));
  EXPECT_EQ(Cbtctl(cbtctl::RunRunsCommand, {"runs", "b"}, socket_, &out),
            common::kExitOk);
  EXPECT_THAT(out, HasSubstr("succeeded"));
  EXPECT_EQ(Cbtctl(cbtctl::RunStatusCommand, {"status"}, socket_, &out),
            common::kExitOk);
  EXPECT_THAT(out, HasSubstr("0 running, 0 queued"));
  EXPECT_EQ(Cbtctl(cbtctl::RunCancelCommand, {"cancel", "999"}, socket_),
            common::kExitRefused);
}

TEST(ControlClientTest, CbtctlWithoutDaemonSaysUnavailable) {
  EXPECT_EQ(
      Cbtctl(cbtctl::RunStatusCommand, {"status"}, "/tmp/cbtd-none/cbtd.sock"),
      common::kExitUnavailable);
}

TEST(ControlClientTest, NoDaemonIsUnavailableWithAHint) {
  ControlClient client("/tmp/cbtd-no-such-dir/cbtd.sock");
  auto status = client.GetStatus();
  EXPECT_EQ(status.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.status().message()),
              HasSubstr("systemctl status cbtd"));
}

}  // namespace
}  // namespace cbtd::agent
