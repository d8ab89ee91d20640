// external: changed extents supplied by a caller (e.g. a hypervisor's dirty
// bitmap exported as a file), trusted only for the generation they belong to.
//
// File format (JSON):
//   {"generation": "<id>", "extents": [[offset_bytes, length_bytes], ...]}
#ifndef CBTD_CBT_EXTERNAL_METHOD_H_
#define CBTD_CBT_EXTERNAL_METHOD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cbt/changed_set.h"

namespace cbtd::cbt {

// Lost (in the result) when the file's generation differs from
// `expected_generation` or the file is malformed or names bytes beyond the
// volume: an untrusted list is never used as a partial answer.
ChangedSet ComputeExternal(std::string_view file_contents,
                           const std::string& expected_generation,
                           uint64_t volume_size_bytes);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_EXTERNAL_METHOD_H_
