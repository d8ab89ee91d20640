#include "receiver/audit.h"

#include "absl/strings/str_cat.h"

namespace cbtd::receiver {
namespace {

std::string Value(const std::string& v) {
  bool quote = v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || c == '\n' ||
        c == '\t') {
      quote = true;
    }
  }
  if (!quote) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string FormatAuditLine(const std::string& event, const AuditFields& what,
                            const std::string& outcome,
                            const AuditFields& details) {
  std::string line = absl::StrCat("AUDIT event=", Value(event));
  for (const auto& [k, v] : what) absl::StrAppend(&line, " ", k, "=", Value(v));
  absl::StrAppend(&line, " outcome=", Value(outcome));
  for (const auto& [k, v] : details) {
    absl::StrAppend(&line, " ", k, "=", Value(v));
  }
  return line;
}

}  // namespace cbtd::receiver
