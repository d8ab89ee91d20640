// ProbeTlsRejection over a plain socket and OpenSSL (tls_probe.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "transport/tls_probe.h"

namespace cbtd::transport {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

// Writing to a socket the peer closed raises SIGPIPE, which would kill the
// process: blocked on this thread while the probe runs, and a pending one
// swallowed before it is unblocked.
class ScopedNoSigpipe {
 public:
  ScopedNoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~ScopedNoSigpipe() {
    const timespec zero{0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedNoSigpipe(const ScopedNoSigpipe&) = delete;
  ScopedNoSigpipe& operator=(const ScopedNoSigpipe&) = delete;

 private:
  sigset_t pipe_, old_;
};

std::unique_ptr<BIO, BioFree> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The OpenSSL errors queued since the last call, as one line.
std::string TakeErrors() {
  std::string out;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : absl::StrCat("error ", e);
  }
  return out;
}

// Splits "host:port" / "[v6]:port" (and gRPC's "dns:///", "ipv4:",
// "ipv6:" prefixes).
bool SplitAddress(std::string a, std::string& host, std::string& port) {
  for (const char* prefix : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (a.rfind(prefix, 0) == 0) a = a.substr(std::string(prefix).size());
  }
  if (!a.empty() && a.front() == '[') {
    const size_t end = a.find(']');
    if (end == std::string::npos || end + 1 >= a.size() || a[end + 1] != ':') {
      return false;
    }
    host = a.substr(1, end - 1);
    port = a.substr(end + 2);
    return true;
  }
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos || a.find(':') != colon) return false;
  host = a.substr(0, colon);
  port = a.substr(colon + 1);
  return !host.empty() && !port.empty();
}

// A connected socket with `timeout` for connect, reads and writes; none if
// none could be made.
common::UniqueFd Connect(const std::string& host, const std::string& port,
                         std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0)
    return common::UniqueFd();
  common::UniqueFd out;
  for (addrinfo* ai = res; ai != nullptr && !out; ai = ai->ai_next) {
    common::UniqueFd owned(::socket(
        ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    const int fd = owned.get();
    if (fd < 0) continue;
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    bool ok = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
           ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    if (!ok) continue;
    ::fcntl(fd, F_SETFL, flags);
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    out = std::move(owned);
  }
  ::freeaddrinfo(res);
  return out;
}

absl::Status Rejected(const std::string& why) {
  return absl::UnauthenticatedError(absl::StrCat(
      "the receiver refused this host's TLS certificate (", why,
      "): --tls-cert must be signed by the CA the receiver trusts "
      "(--client-ca there) and be valid now; this is not retried"));
}

// One handshake. Sets `closed` when the receiver hung up right after the
// handshake without a byte: that is how a gRPC server refuses a client
// certificate under TLS 1.3 (it closes without flushing its alert).
absl::Status ProbeOnce(const TlsProbeTarget& target,
                       std::chrono::milliseconds timeout, bool& closed) {
  closed = false;
  std::string host, port;
  if (!SplitAddress(target.address, host, port)) return absl::OkStatus();
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::OkStatus();
  // Our own material, exactly as the channel uses it.
  X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
  {
    auto bio = MemBio(target.ca_pem);
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, ca);
      X509_free(ca);
    }
  }
  {
    auto bio = MemBio(target.cert_pem);
    std::unique_ptr<X509, X509Free> cert(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert || SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1) {
      return absl::OkStatus();
    }
    while (X509* extra =
               PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      SSL_CTX_add_extra_chain_cert(ctx.get(), extra);  // takes ownership
    }
    auto kbio = MemBio(target.key_pem);
    std::unique_ptr<EVP_PKEY, PkeyFree> key(
        PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
    if (!key || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1) {
      return absl::OkStatus();
    }
  }
  ERR_clear_error();
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);

  common::UniqueFd fd = Connect(host, port, timeout);
  if (!fd) return absl::OkStatus();  // a network failure
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) return absl::OkStatus();
  SSL_set_fd(ssl.get(), fd.get());
  const std::string name =
      target.server_name.empty() ? host : target.server_name;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  in6_addr ip;
  if (inet_pton(AF_INET, name.c_str(), &ip) == 1 ||
      inet_pton(AF_INET6, name.c_str(), &ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
    X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  }

  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    const std::string errors = TakeErrors();
    if (verify != X509_V_OK) {
      return absl::UnauthenticatedError(absl::StrCat(
          "the receiver's TLS certificate does not verify against --ca for "
          "the name '",
          name, "' (", X509_verify_cert_error_string(verify),
          "); check --ca and --server-name; this is not retried"));
    }
    if (errors.find("alert") != std::string::npos) return Rejected(errors);
    return absl::OkStatus();
  }
  // TLS 1.3: the server judges our certificate after our side of the
  // handshake. Accepted, it answers the HTTP/2 preface with its SETTINGS;
  // refused, it sends an alert or just closes.
  static const char kPreface[] =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00";  // + empty SETTINGS
  SSL_write(ssl.get(), kPreface, sizeof kPreface - 1);
  char buf[64];
  errno = 0;
  const int n = SSL_read(ssl.get(), buf, sizeof buf);
  if (n > 0) return absl::OkStatus();
  const int err = SSL_get_error(ssl.get(), n);
  const std::string errors = TakeErrors();
  if (err == SSL_ERROR_SSL && errors.find("alert") != std::string::npos) {
    return Rejected(errors);
  }
  closed = err == SSL_ERROR_ZERO_RETURN ||
           (err == SSL_ERROR_SYSCALL && errno == 0) ||
           (err == SSL_ERROR_SSL && errors.find("eof") != std::string::npos);
  return absl::OkStatus();
}

}  // namespace

absl::Status ProbeTlsRejection(const TlsProbeTarget& target,
                               std::chrono::milliseconds timeout) {
  ScopedNoSigpipe no_sigpipe;
  // A close without a word is the refusal only if it happens every time:
  // one connection dropped by the network must not stop a backup.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool closed = false;
    if (absl::Status s = ProbeOnce(target, timeout, closed); !s.ok()) return s;
    if (!closed) return absl::OkStatus();
  }
  return Rejected(
      "it hung up right after the TLS handshake, twice, as a gRPC server "
      "does on a client certificate it does not accept");
}

}  // namespace cbtd::transport
