#include "agent/metrics.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::agent {
namespace {

std::string Label(const std::string& volume) {
  std::string escaped;
  for (char c : volume) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return absl::StrCat("{volume=\"", escaped, "\"}");
}

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

}  // namespace

std::string RenderMetrics(const std::vector<VolumeRunStats>& stats,
                          absl::Time now) {
  std::string out;
  const auto family = [&](const Family& f, auto value) {
    absl::StrAppend(&out, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name,
                    " ", f.type, "\n");
    for (const VolumeRunStats& s : stats) {
      absl::StrAppend(&out, f.name, Label(s.volume), " ", value(s), "\n");
    }
  };
  family({"cbtd_last_success_timestamp_seconds", "gauge",
          "End of the volume's last successful backup (0: never)."},
         [](const VolumeRunStats& s) {
           return s.last_success ? absl::ToUnixSeconds(*s.last_success) : 0;
         });
  family({"cbtd_last_run_duration_seconds", "gauge",
          "Duration of the volume's last finished run."},
         [](const VolumeRunStats& s) {
           return absl::ToDoubleSeconds(s.last_duration);
         });
  family({"cbtd_last_run_read_bytes", "gauge",
          "Bytes read from the snapshot by the last finished run."},
         [](const VolumeRunStats& s) { return s.last_bytes_read; });
  family({"cbtd_last_run_sent_bytes", "gauge",
          "Bytes sent to the receiver by the last finished run."},
         [](const VolumeRunStats& s) { return s.last_bytes_sent; });
  family({"cbtd_run_failures_total", "counter",
          "Runs that failed or were interrupted."},
         [](const VolumeRunStats& s) { return s.failures; });
  family({"cbtd_tracking_fallbacks_total", "counter",
          "Runs that fell back to a full hash read, with a reason in the "
          "run history."},
         [](const VolumeRunStats& s) { return s.fallbacks; });
  family({"cbtd_last_restore_success_timestamp_seconds", "gauge",
          "End of the volume's last successful restore or rollback (0: "
          "never)."},
         [](const VolumeRunStats& s) {
           const std::optional<absl::Time>& t = s.restores.last_success;
           return t ? absl::ToUnixSeconds(*t) : 0;
         });
  family({"cbtd_last_restore_duration_seconds", "gauge",
          "Duration of the volume's last finished restore or rollback."},
         [](const VolumeRunStats& s) {
           return absl::ToDoubleSeconds(s.restores.last_duration);
         });
  family({"cbtd_last_restore_written_bytes", "gauge",
          "Bytes written to the target by the last finished restore or "
          "rollback."},
         [](const VolumeRunStats& s) { return s.restores.last_bytes_written; });
  family({"cbtd_restores_total", "counter",
          "Restores and rollbacks that succeeded."},
         [](const VolumeRunStats& s) { return s.restores.succeeded; });
  family({"cbtd_restore_failures_total", "counter",
          "Restores and rollbacks that failed or were interrupted."},
         [](const VolumeRunStats& s) { return s.restores.failures; });
  absl::StrAppend(&out,
                  "# HELP cbtd_metrics_timestamp_seconds When cbtd wrote "
                  "this file.\n# TYPE cbtd_metrics_timestamp_seconds gauge\n"
                  "cbtd_metrics_timestamp_seconds ",
                  absl::ToUnixSeconds(now), "\n");
  return out;
}

absl::Status WriteMetricsFile(const std::string& path,
                              const std::vector<VolumeRunStats>& stats,
                              absl::Time now) {
  if (absl::Status s = common::AtomicWriteFile(path, RenderMetrics(stats, now));
      !s.ok()) {
    return s;
  }
  // cbtd runs with umask 077; the collector is not root.
  if (::chmod(path.c_str(), 0644) != 0) {
    return common::ErrnoStatus(errno, absl::StrCat("chmod 0644 ", path));
  }
  return absl::OkStatus();
}

}  // namespace cbtd::agent
