// The real ConfigProbe: stat(2) and open(2) on the host, and a plain
// connect(2) to the receiver (TCP with a 3 s timeout, or its unix socket).
// Reachability is only a connection: TLS and the receiver's answer are
// checked by the first backup.
#ifndef CBTD_AGENT_LINUX_CONFIG_PROBE_H_
#define CBTD_AGENT_LINUX_CONFIG_PROBE_H_

#include "agent/config.h"

namespace cbtd::agent {

class LinuxConfigProbe : public ConfigProbe {
 public:
  absl::Status CheckVolumePath(const std::string& path) override;
  absl::Status CheckReadable(const std::string& path) override;
  absl::Status CheckReachable(const std::string& address) override;
  absl::StatusOr<snapshot::VolumeInfo> DescribeVolume(
      const std::string& path) override;
};

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_LINUX_CONFIG_PROBE_H_
