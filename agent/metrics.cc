#include "agent/metrics.h"

#include "common/prometheus.h"

namespace cbtd::agent {

std::string RenderMetrics(const std::vector<VolumeRunStats>& stats,
                          absl::Time now) {
  common::PrometheusText out;
  const auto family = [&](const char* name, const char* type, const char* help,
                          auto value) {
    out.Family(name, type, help);
    for (const VolumeRunStats& s : stats) {
      out.Sample(name, {{"volume", s.volume}}, value(s));
    }
  };
  family("cbtd_last_success_timestamp_seconds", "gauge",
         "End of the volume's last successful backup (0: never).",
         [](const VolumeRunStats& s) {
           return s.last_success ? absl::ToUnixSeconds(*s.last_success) : 0;
         });
  family("cbtd_last_run_duration_seconds", "gauge",
         "Duration of the volume's last finished run.",
         [](const VolumeRunStats& s) {
           return absl::ToDoubleSeconds(s.last_duration);
         });
  family("cbtd_last_run_read_bytes", "gauge",
         "Bytes read from the snapshot by the last finished run.",
         [](const VolumeRunStats& s) { return s.last_bytes_read; });
  family("cbtd_last_run_sent_bytes", "gauge",
         "Bytes sent to the receiver by the last finished run.",
         [](const VolumeRunStats& s) { return s.last_bytes_sent; });
  family("cbtd_run_failures_total", "counter",
         "Runs that failed or were interrupted.",
         [](const VolumeRunStats& s) { return s.failures; });
  family("cbtd_tracking_fallbacks_total", "counter",
         "Runs that fell back to a full hash read, with a reason in the "
         "run history.",
         [](const VolumeRunStats& s) { return s.fallbacks; });
  family("cbtd_last_restore_success_timestamp_seconds", "gauge",
         "End of the volume's last successful restore or rollback (0: "
         "never).",
         [](const VolumeRunStats& s) {
           const std::optional<absl::Time>& t = s.restores.last_success;
           return t ? absl::ToUnixSeconds(*t) : 0;
         });
  family("cbtd_last_restore_duration_seconds", "gauge",
         "Duration of the volume's last finished restore or rollback.",
         [](const VolumeRunStats& s) {
           return absl::ToDoubleSeconds(s.restores.last_duration);
         });
  family("cbtd_last_restore_written_bytes", "gauge",
         "Bytes written to the target by the last finished restore or "
         "rollback.",
         [](const VolumeRunStats& s) { return s.restores.last_bytes_written; });
  family("cbtd_restores_total", "counter",
         "Restores and rollbacks that succeeded.",
         [](const VolumeRunStats& s) { return s.restores.succeeded; });
  family("cbtd_restore_failures_total", "counter",
         "Restores and rollbacks that failed or were interrupted.",
         [](const VolumeRunStats& s) { return s.restores.failures; });
  out.Family("cbtd_metrics_timestamp_seconds", "gauge",
             "When cbtd wrote this file.");
  out.Sample("cbtd_metrics_timestamp_seconds", {},
             static_cast<int64_t>(absl::ToUnixSeconds(now)));
  return out.text();
}

absl::Status WriteMetricsFile(const std::string& path,
                              const std::vector<VolumeRunStats>& stats,
                              absl::Time now) {
  return common::WritePrometheusTextfile(path, RenderMetrics(stats, now));
}

}  // namespace cbtd::agent
