#include "transport/names.h"

#include <algorithm>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace cbtd::transport {

absl::Status ValidateName(std::string_view what, std::string_view name) {
  const bool ok =
      !name.empty() && name.size() <= kMaxNameBytes && name[0] != '.' &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      });
  if (ok) return absl::OkStatus();
  // A NUL or a control character must not reach a terminal raw; an
  // over-long name is cut so the message stays readable.
  std::string shown =
      absl::CHexEscape(std::string(name.substr(0, 2 * kMaxNameBytes)));
  if (name.size() > 2 * kMaxNameBytes) shown += "...";
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", std::string(what), " '", shown, "' (",
                   name.size(), " bytes): use 1-", kMaxNameBytes,
                   " characters of [A-Za-z0-9._-], not starting with '.'"));
}

}  // namespace cbtd::transport
