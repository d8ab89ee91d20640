// Errors of librados calls as absl::Status, shared by the RADOS object
// store and the RADOS chunk index.
#ifndef CBTD_RECEIVER_RADOS_STATUS_H_
#define CBTD_RECEIVER_RADOS_STATUS_H_

#include <string>

#include "absl/status/status.h"

namespace cbtd::receiver {

// A negative librados return code -> Status naming `what`. Codes chosen by
// what the caller should do: a timeout is UNAVAILABLE (retry once the
// cluster is back), a too-large object INVALID_ARGUMENT, missing caps
// PERMISSION_DENIED.
absl::Status RadosStatus(int rc, const std::string& what);

}  // namespace cbtd::receiver

#endif  // CBTD_RECEIVER_RADOS_STATUS_H_
