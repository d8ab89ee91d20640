// libFuzzer: the cbtd.conf parser (agent/config.h): any text parses into a
// config or a list of problems, each with its line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)cbtd::agent::ParseConfig(
      "/etc/cbtd/cbtd.conf",
      std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
