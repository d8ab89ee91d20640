#include "receiver/cli/metrics_http.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::receiver::cli {
namespace {

constexpr size_t kMaxRequestBytes = 8192;

absl::Status Invalid(const std::string& address, const char* why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--metrics-listen '", address, "': ", why,
                   " (e.g. 127.0.0.1:9465, [::1]:9465 or 9465)"));
}

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // the scraper went away: nothing to tell it
    }
    done += static_cast<size_t>(n);
  }
}

std::string Reply(const char* status, const std::string& body,
                  const char* type = "text/plain; charset=utf-8") {
  return absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::function<std::string()> render) {
  std::string host = "127.0.0.1";
  std::string port = address;
  if (const size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
  }
  uint32_t port_number = 0;
  if (host.empty() || !absl::SimpleAtoi(port, &port_number) ||
      port_number > 65535) {
    return Invalid(address, "not HOST:PORT");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    return Invalid(address, "the host must be a numeric address");
  }
  common::UniqueFd fd(
      ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0));
  int one = 1;
  const bool bound =
      fd.valid() &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
      ::bind(fd.get(), found->ai_addr, found->ai_addrlen) == 0 &&
      ::listen(fd.get(), 16) == 0;
  const int err = errno;
  ::freeaddrinfo(found);
  if (!bound) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen ", address, ": ", std::strerror(err),
                     " (another process on the port? choose another, or "
                     "use --metrics-textfile)"));
  }
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len);
  const int bound_port =
      local.ss_family == AF_INET6
          ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
          : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return common::ErrnoStatus(errno, "metrics server: pipe");
  }
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(
      std::move(fd), common::UniqueFd(pipe_fds[0]),
      common::UniqueFd(pipe_fds[1]), bound_port, std::move(render)));
}

MetricsHttpServer::MetricsHttpServer(common::UniqueFd listen_fd,
                                     common::UniqueFd wake_read,
                                     common::UniqueFd wake_write, int port,
                                     std::function<std::string()> render)
    : listen_fd_(std::move(listen_fd)),
      wake_read_(std::move(wake_read)),
      wake_write_(std::move(wake_write)),
      port_(port),
      render_(std::move(render)) {
  thread_ = std::thread([this] { Loop(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  const char stop = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_write_.get(), &stop, 1);
  if (thread_.joinable()) thread_.join();
}

void MetricsHttpServer::Loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0},
                     {wake_read_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents & POLLIN) {
      common::UniqueFd conn(
          ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (conn.valid()) Serve(conn.get());
    }
  }
}

void MetricsHttpServer::Serve(int fd) {
  // A slow or silent client gets 2 s, then the connection is closed: it
  // cannot hold the (only) thread.
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos) {
    if (request.size() >= kMaxRequestBytes) {
      WriteAll(fd, Reply("431 Request Header Fields Too Large", ""));
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    request.append(buf, static_cast<size_t>(n));
  }
  const std::string line = request.substr(0, request.find_first_of("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 + 1);
  const std::string method = line.substr(0, sp1);
  const std::string target =
      sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET") {
    WriteAll(fd, Reply("405 Method Not Allowed", "GET /metrics only\n"));
    return;
  }
  if (target != "/metrics" && target.rfind("/metrics?", 0) != 0) {
    WriteAll(fd, Reply("404 Not Found", "cbt-receiver serves /metrics\n"));
    return;
  }
  WriteAll(fd, Reply("200 OK", render_(), "text/plain; version=0.0.4"));
}

}  // namespace cbtd::receiver::cli
