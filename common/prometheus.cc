#include "common/prometheus.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/fs.h"

namespace cbtd::common {
namespace {

std::string Escape(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return escaped;
}

}  // namespace

void PrometheusText::Family(const std::string& name, const std::string& type,
                            const std::string& help) {
  absl::StrAppend(&text_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                  type, "\n");
}

void PrometheusText::Append(const std::string& name, const Labels& labels,
                            const std::string& value) {
  absl::StrAppend(&text_, name);
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&text_, i ? "," : "", labels[i].first, "=\"",
                      Escape(labels[i].second), "\"");
    }
    text_ += '}';
  }
  absl::StrAppend(&text_, " ", value, "\n");
}

void PrometheusText::Sample(const std::string& name, const Labels& labels,
                            double value) {
  Append(name, labels, absl::StrCat(value));
}

void PrometheusText::Sample(const std::string& name, const Labels& labels,
                            uint64_t value) {
  Append(name, labels, absl::StrCat(value));
}

void PrometheusText::Sample(const std::string& name, const Labels& labels,
                            int64_t value) {
  Append(name, labels, absl::StrCat(value));
}

absl::Status WritePrometheusTextfile(const std::string& path,
                                     const std::string& text) {
  if (absl::Status s = AtomicWriteFile(path, text); !s.ok()) return s;
  if (::chmod(path.c_str(), 0644) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod 0644 ", path));
  }
  return absl::OkStatus();
}

}  // namespace cbtd::common
