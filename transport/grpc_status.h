// absl::Status <-> grpc::Status. Included only by gRPC adapters
// (transport/grpc_*.cc, agent/control_service.cc, control/control_client.cc):
// the rest of cbtd sees absl::Status only. The numeric codes are identical.
#ifndef CBTD_TRANSPORT_GRPC_STATUS_H_
#define CBTD_TRANSPORT_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace cbtd::transport {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_GRPC_STATUS_H_
