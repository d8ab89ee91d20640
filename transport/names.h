// The one rule for the names that travel in a stream and become path
// components in the vault: host, volume, version id, tenant, and the host
// identity a certificate's common name carries. The sender refuses a bad
// name before it reads a byte; the receiver refuses it again (every byte
// from the network is hostile).
//
// Thread-safety: pure function.
#ifndef CBTD_TRANSPORT_NAMES_H_
#define CBTD_TRANSPORT_NAMES_H_

#include <string_view>

#include "absl/status/status.h"

namespace cbtd::transport {

inline constexpr size_t kMaxNameBytes = 128;

// OK for 1..kMaxNameBytes characters of [A-Za-z0-9._-] not starting with
// '.'; otherwise INVALID_ARGUMENT "invalid <what> '<name>': use ..." (the
// name is printed with anything unprintable escaped).
absl::Status ValidateName(std::string_view what, std::string_view name);

inline bool IsValidName(std::string_view name) {
  return ValidateName("name", name).ok();
}

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_NAMES_H_
