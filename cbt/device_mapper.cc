#include "cbt/device_mapper.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cbtd::cbt {

absl::StatusOr<DmTarget> SingleTarget(const DmTable& table,
                                      const std::string& type,
                                      const std::string& dm_name) {
  if (table.size() != 1 || table[0].type != type) {
    return absl::FailedPreconditionError(
        absl::StrCat(dm_name, " is not a '", type, "' device (it has '",
                     common::FormatDmTable(table), "')"));
  }
  return table[0];
}

absl::StatusOr<std::string> ParamField(const DmTarget& target, size_t index,
                                       const std::string& dm_name) {
  std::vector<std::string> fields = absl::StrSplit(
      target.params, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  if (index >= fields.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device-mapper ", target.type, " target of ", dm_name,
                     ": unexpected status '", target.params, "'"));
  }
  return fields[index];
}

}  // namespace cbtd::cbt
