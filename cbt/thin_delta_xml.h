// Parser for `thin_delta` (thin-provisioning-tools 0.9) XML output:
//
//   <superblock uuid="" time="1" transaction="2" data_block_size="128"
//               nr_data_blocks="1600">
//     <diff left="1" right="2">
//       <same begin="0" length="4"/>
//       <different begin="4" length="1"/>
//       <left_only begin="5" length="2"/>
//       <right_only begin="9" length="3"/>
//     </diff>
//   </superblock>
//
// begin/length count thin-device blocks of data_block_size sectors (512
// bytes). `different` and `right_only` become changed bytes; `left_only`
// (mapped in the old snapshot, unmapped in the new one: discarded) becomes
// zeroed bytes; `same` is ignored. The --verbose form (extra *_data_begin
// attributes) is accepted too. Any other element, a missing or
// non-numeric attribute, or an overflowing range is INVALID_ARGUMENT.
#ifndef CBTD_CBT_THIN_DELTA_XML_H_
#define CBTD_CBT_THIN_DELTA_XML_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "cbt/extent_set.h"

namespace cbtd::cbt {

struct ThinDelta {
  uint64_t data_block_sectors = 0;
  uint64_t left_thin_id = 0;
  uint64_t right_thin_id = 0;
  ExtentSet changed_bytes;  // different + right_only
  ExtentSet zeroed_bytes;   // left_only
};

absl::StatusOr<ThinDelta> ParseThinDeltaXml(std::string_view xml);

// Parser for `thin_dump --dev-id N` (thin-provisioning-tools 0.9) XML:
//
//   <superblock uuid="" time="1" transaction="2" flags="0" version="2"
//               data_block_size="128" nr_data_blocks="1600">
//     <device dev_id="3" mapped_blocks="5" transaction="1"
//             creation_time="0" snap_time="1">
//       <range_mapping origin_begin="0" data_begin="7" length="4" time="0"/>
//       <single_mapping origin_block="9" data_block="2" time="1"/>
//     </device>
//   </superblock>
//
// The blocks of device `dev_id` that are mapped: everything else reads as
// zeros. Other devices are skipped; NOT_FOUND if `dev_id` is not there;
// INVALID_ARGUMENT as ParseThinDeltaXml.
struct ThinMapping {
  uint64_t data_block_sectors = 0;
  ExtentSet mapped_bytes;
};
absl::StatusOr<ThinMapping> ParseThinDumpXml(std::string_view xml,
                                             uint64_t dev_id);

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_THIN_DELTA_XML_H_
