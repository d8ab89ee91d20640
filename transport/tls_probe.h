// ProbeTlsRejection: tells a rejected certificate from a network failure.
//
// gRPC reports both the same way (UNAVAILABLE, "Socket closed"): with TLS
// 1.3 the server checks the client's certificate after the client has
// finished its side of the handshake, so a receiver that refuses our
// certificate looks, to the channel, like a connection that dropped, and
// the sender would retry it for its whole retry budget. After such a
// failure the client runs this: one TLS handshake of its own with the same
// material, then a short read.
//
// Returns UNAUTHENTICATED, naming the certificate, when the receiver's
// certificate does not verify against `ca_pem` and `server_name`, or when
// the receiver answers our handshake with a fatal alert (unknown CA,
// expired, bad certificate, certificate required). Returns OK when nothing
// points at the certificates (refused or timed-out connection, the peer
// talking HTTP/2, a plain close): the caller's failure stands and may be
// retried. Never blocks longer than about twice `timeout`.
//
// Thread-safety: safe to call from any thread.
#ifndef CBTD_TRANSPORT_TLS_PROBE_H_
#define CBTD_TRANSPORT_TLS_PROBE_H_

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace cbtd::transport {

struct TlsProbeTarget {
  std::string address;      // "host:port" or "[v6]:port" (gRPC target)
  std::string server_name;  // name to verify; empty: the address's host
  std::string ca_pem;       // PEM contents
  std::string cert_pem;
  std::string key_pem;
};

absl::Status ProbeTlsRejection(const TlsProbeTarget& target,
                               std::chrono::milliseconds timeout);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_TLS_PROBE_H_
