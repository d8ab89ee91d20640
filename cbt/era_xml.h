// Parser for `era_invalidate` (thin-provisioning-tools 0.9) XML output:
//
//   <blocks>
//     <block block="5"/>
//     <range begin="8" end="12"/>     (end exclusive)
//   </blocks>
//
// Numbers count era blocks of `block_sectors` sectors (512 bytes); the
// result is in bytes. Unknown elements, missing or non-numeric attributes,
// end <= begin and overflow are INVALID_ARGUMENT.
#ifndef CBTD_CBT_ERA_XML_H_
#define CBTD_CBT_ERA_XML_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "cbt/extent_set.h"

namespace cbtd::cbt {

absl::StatusOr<ExtentSet> ParseEraInvalidateXml(std::string_view xml,
                                                uint64_t block_sectors);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_ERA_XML_H_
