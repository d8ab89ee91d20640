// Changed-extent lists given to `cbtctl send --changes/--discards`.
#ifndef CBTD_TRANSPORT_EXTENT_LIST_H_
#define CBTD_TRANSPORT_EXTENT_LIST_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "cbt/extent_set.h"

namespace cbtd::transport {

// Parses a changed-extent list: one extent per line, "OFFSET LENGTH" in
// bytes (decimal, or hex with 0x), blank lines and '#' comments ignored.
// `what` names the file in errors (INVALID_ARGUMENT with the line number).
absl::StatusOr<cbt::ExtentSet> ParseExtentList(std::string_view text,
                                               std::string_view what);

}  // namespace cbtd::transport

#endif  // CBTD_TRANSPORT_EXTENT_LIST_H_
