// This host's name as cbtd files backups under it.
#ifndef CBTD_COMMON_HOST_NAME_H_
#define CBTD_COMMON_HOST_NAME_H_

#include <string>

namespace cbtd::common {

// This host's name up to the first dot ("localhost" if it has none): the
// identity a plaintext receiver files backups under, and cbtctl send's
// default --host.
std::string ShortHostName();

}  // namespace cbtd::common

#endif  // CBTD_COMMON_HOST_NAME_H_
