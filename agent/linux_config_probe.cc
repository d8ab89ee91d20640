#include "agent/linux_config_probe.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fs.h"
#include "common/unique_fd.h"
#include "snapshot/linux.h"

namespace cbtd::agent {

absl::Status LinuxConfigProbe::CheckVolumePath(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("stat ", path));
  }
  if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is neither a block device nor a regular file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<snapshot::VolumeInfo> LinuxConfigProbe::DescribeVolume(
    const std::string& path) {
  const std::unique_ptr<snapshot::Lvm> lvm = snapshot::NewLinuxLvm();
  const std::unique_ptr<snapshot::DeviceMapper> dm =
      snapshot::NewLinuxDeviceMapper();
  const std::unique_ptr<snapshot::Host> host = snapshot::NewLinuxHost();
  return snapshot::DiscoverVolume(path, *lvm, *dm, *host);
}

absl::Status LinuxConfigProbe::CheckReadable(const std::string& path) {
  const common::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  return absl::OkStatus();
}

namespace {

// A connected socket or the connect error; the fd is closed either way.
absl::Status ConnectOnce(int family, const sockaddr* addr, socklen_t len,
                         const std::string& what) {
  const common::UniqueFd fd(
      ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return common::ErrnoStatus(errno, absl::StrCat("socket for ", what));
  int err = 0;
  if (::connect(fd.get(), addr, len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      const int n = ::poll(&p, 1, 3000);
      if (n == 0) {
        return absl::UnavailableError(
            absl::StrCat("connect ", what, ": no answer within 3 s"));
      }
      socklen_t elen = sizeof(err);
      if (n < 0) {
        err = errno;
      } else if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen) !=
                 0) {
        err = errno;
      }
    }
  }
  if (err != 0) return common::ErrnoStatus(err, absl::StrCat("connect ", what));
  return absl::OkStatus();
}

}  // namespace

absl::Status LinuxConfigProbe::CheckReachable(const std::string& address) {
  if (address.starts_with("unix:")) {
    const std::string path = address.substr(5);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (path.size() >= sizeof(sun.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unix socket path too long: ", path));
    }
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    return ConnectOnce(AF_UNIX, reinterpret_cast<const sockaddr*>(&sun),
                       sizeof(sun), path);
  }
  // The config parser accepted host:port or [v6]:port.
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.starts_with("[")) host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("resolve ", host, ": ", ::gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError("no addresses");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    last = ConnectOnce(ai->ai_family, ai->ai_addr, ai->ai_addrlen, address);
    if (last.ok()) break;
  }
  ::freeaddrinfo(res);
  return last;
}

}  // namespace cbtd::agent
