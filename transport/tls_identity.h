// The identity a client certificate carries: its subject CN, which the
// receiver uses as the host namespace (see grpc_server.h).
#ifndef CBTD_TRANSPORT_TLS_IDENTITY_H_
#define CBTD_TRANSPORT_TLS_IDENTITY_H_

#include <string>

#include "absl/status/statusor.h"

namespace cbtd::transport {

// Subject CN of the first certificate in `pem`. INVALID_ARGUMENT if the PEM
// does not parse or has no CN.
absl::StatusOr<std::string> CertificateCommonName(const std::string& pem);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_TLS_IDENTITY_H_
