// The real ConfigProbe: stat(2) and open(2) on the host. Reachability of the
// receiver is not probed here (that needs transport/'s client); it returns
// OK so --check-config stays offline.
#ifndef CBTD_AGENT_LINUX_CONFIG_PROBE_H_
#define CBTD_AGENT_LINUX_CONFIG_PROBE_H_

#include "agent/config.h"

namespace cbtd::agent {

class LinuxConfigProbe : public ConfigProbe {
 public:
  absl::Status CheckVolumePath(const std::string& path) override;
  absl::Status CheckReadable(const std::string& path) override;
  absl::Status CheckReachable(const std::string& address) override;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_LINUX_CONFIG_PROBE_H_
