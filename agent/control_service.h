// The gRPC face of the Agent: translates control.proto to Agent calls and
// absl::Status to grpc::Status, nothing more. ControlServer serves it on a
// unix socket that only root can use.
//
// Access control: the socket is created inside a directory only root can
// enter (/run/cbtd, 0700, by systemd-tmpfiles) and chmod'ed 0600 right
// after it is bound; cbtd runs with umask 077 so it is never wider. The
// kernel then refuses connect(2) from other users (EACCES).
#ifndef CBTD_AGENT_CONTROL_SERVICE_H_
#define CBTD_AGENT_CONTROL_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/agent.h"

namespace grpc {
class Server;
}

namespace cbtd::agent {

class ControlService;

// Lifecycle: Start() ──► serving ──Stop() or destruction──► stopped.
class ControlServer {
 public:
  // Binds `socket_path` (replacing a stale socket file), chmods it 0600
  // and starts serving `agent`, which must outlive the server.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(
      const std::string& socket_path, Agent& agent);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting calls, waits a bounded time for calls in flight, and
  // removes the socket file.
  void Stop();

 private:
  ControlServer() = default;
  std::string socket_path_;
  std::unique_ptr<ControlService> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_CONTROL_SERVICE_H_
