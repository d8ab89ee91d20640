#include "common/host_name.h"

#include <unistd.h>

namespace cbtd::common {

std::string ShortHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  std::string h = buf;
  return h.substr(0, h.find('.'));
}

}  // namespace cbtd::common
