// Prometheus text-format metrics for node_exporter's textfile collector
// (docs/operations.md lists them). Rendered from the state store's
// per-volume statistics and written atomically, so the collector never
// reads a half-written file.
#ifndef CBTD_AGENT_METRICS_H_
#define CBTD_AGENT_METRICS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/state_store.h"

namespace cbtd::agent {

// The exposition text; `now` becomes cbtd_metrics_timestamp_seconds.
std::string RenderMetrics(const std::vector<VolumeRunStats>& stats,
                          absl::Time now);

// AtomicWriteFile(path, RenderMetrics(...)); the file is made 0644 so the
// collector (another user) can read it.
absl::Status WriteMetricsFile(const std::string& path,
                              const std::vector<VolumeRunStats>& stats,
                              absl::Time now);

}  // namespace cbtd::agent

#endif  // CBTD_AGENT_METRICS_H_
