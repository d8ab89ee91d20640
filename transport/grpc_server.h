// ReceiverServer: the gRPC front of cbt-receiver (service.proto). It
// authenticates clients by their TLS certificate, authorizes every call
// against the host namespace and translates between proto and the domain
// calls: the sessions and their rules (open, resume, takeover, expiry,
// quota, framing) are a SessionTable (session_table.h), the vault work a
// ReceiveBackend. docs/transport.md describes the protocol.
//
// Security model:
//   - mutual TLS: the client certificate must chain to `client_ca_pem`; its
//     subject CN is the caller's identity, which is the host namespace. A
//     host opens sessions only for header.source_host == its identity and
//     reads only its own versions. Identities in `admin_identities` may read
//     every host's versions (and write only their own namespace).
//   - insecure: plaintext, only on a loopback listen address (Start refuses
//     any other); the identity is taken from the `cbtd-identity` request
//     metadata, i.e. trusted. For tests and local one-off use.
//
// Thread-safety: Start/Shutdown/Wait from one owner thread; RPCs run on a
// bounded gRPC thread pool.
#ifndef CBTD_TRANSPORT_GRPC_SERVER_H_
#define CBTD_TRANSPORT_GRPC_SERVER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/receive_backend.h"

namespace cbtd::transport {

struct ServerOptions {
  // "host:port"; port 0 picks a free one (see ReceiverServer::port()).
  std::string listen_address;
  bool insecure = false;
  // PEM contents (not paths). Required unless `insecure`.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string client_ca_pem;
  std::vector<std::string> admin_identities = {"admin"};

  // Largest request message accepted; larger ones fail RESOURCE_EXHAUSTED.
  uint32_t max_message_bytes = 16u << 20;
  // Records a sender may have in flight (announced in OpenSession).
  uint32_t window_records = 32;
  // Open sessions (streaming or awaiting resume) across all hosts.
  int max_sessions = 64;
  // Concurrent RPCs being served (sync thread pool size).
  int max_concurrent_rpcs = 128;
  // An Upload stream that receives nothing for this long is cancelled
  // (its session stays resumable).
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // A session with no stream attached is aborted after this long; a
  // committed session's result is remembered this long for late resumes.
  std::chrono::milliseconds resume_ttl{std::chrono::minutes(10)};
};

// True for 127.0.0.0/8, [::1] and "localhost" listen addresses.
bool IsLoopbackAddress(const std::string& listen_address);

class ReceiverServer {
 public:
  // Binds and starts serving. Errors: INVALID_ARGUMENT (bad options, e.g.
  // insecure on a non-loopback address, missing TLS material), UNAVAILABLE
  // (could not bind). `backend` must outlive the server.
  static absl::StatusOr<std::unique_ptr<ReceiverServer>> Start(
      ReceiveBackend* backend, const ServerOptions& options);
  ~ReceiverServer();  // Shuts down; open sessions are aborted.
  ReceiverServer(const ReceiverServer&) = delete;
  ReceiverServer& operator=(const ReceiverServer&) = delete;

  int port() const;
  // Stops accepting, cancels streams, aborts uncommitted sessions.
  void Shutdown();
  // Blocks until Shutdown() (from another thread or a signal handler path).
  void Wait();
  // Uncommitted sessions currently held (streaming or awaiting resume);
  // for tests and metrics.
  int open_sessions() const;

  class Impl;

 private:
  explicit ReceiverServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_GRPC_SERVER_H_
