// The Prometheus text exposition format (version 0.0.4), shared by cbtd's
// and cbt-receiver's metrics: a family header, samples with escaped label
// values, and the atomic textfile write node_exporter's textfile collector
// needs (it must never read a half-written file).
#ifndef CBTD_COMMON_PROMETHEUS_H_
#define CBTD_COMMON_PROMETHEUS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace cbtd::common {

// Appends exposition text. Not thread-safe; build one per rendering.
class PrometheusText {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // "# HELP name help" and "# TYPE name type" (type: counter or gauge).
  void Family(const std::string& name, const std::string& type,
              const std::string& help);
  // "name{k="v",...} value"; label values are escaped (\\, \", \n).
  void Sample(const std::string& name, const Labels& labels, double value);
  void Sample(const std::string& name, const Labels& labels, uint64_t value);
  void Sample(const std::string& name, const Labels& labels, int64_t value);

  const std::string& text() const { return text_; }

 private:
  void Append(const std::string& name, const Labels& labels,
              const std::string& value);
  std::string text_;
};

// Writes `text` to `path` atomically (common/fs.h AtomicWriteFile) and makes
// it 0644: the daemons run with umask 077, the collector as another user.
// Errors name the file.
absl::Status WritePrometheusTextfile(const std::string& path,
                                     const std::string& text);

}  // namespace cbtd::common

#endif  // CBTD_COMMON_PROMETHEUS_H_
