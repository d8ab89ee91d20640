// The real probe against sockets this test opens and closes.
#include "agent/linux_config_probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/unique_fd.h"

namespace cbtd::agent {
namespace {

// A TCP listener on 127.0.0.1:<ephemeral>; port() is where it listens.
class Listener {
 public:
  Listener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_.get(), 4);
    socklen_t len = sizeof(a);
    getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  void Close() { fd_.reset(); }
  int port() const { return port_; }

 private:
  common::UniqueFd fd_;
  int port_ = 0;
};

TEST(LinuxConfigProbeTest, ReachableWhenSomethingListens) {
  LinuxConfigProbe probe;
  Listener listener;
  const std::string address = "127.0.0.1:" + std::to_string(listener.port());
  EXPECT_TRUE(probe.CheckReachable(address).ok());
  listener.Close();
  absl::Status s = probe.CheckReachable(address);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("connect 127.0.0.1:"),
            std::string::npos)
      << s;
}

TEST(LinuxConfigProbeTest, UnixSocketAndFiles) {
  LinuxConfigProbe probe;
  EXPECT_FALSE(probe.CheckReachable("unix:/nonexistent/cbt.sock").ok());
  EXPECT_TRUE(probe.CheckReadable("/proc/self/status").ok());
  EXPECT_EQ(probe.CheckVolumePath("/nonexistent").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(probe.CheckVolumePath("/tmp").code(),
            absl::StatusCode::kFailedPrecondition);  // a directory
}

}  // namespace
}  // namespace cbtd::agent
