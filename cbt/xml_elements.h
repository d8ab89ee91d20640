// A strict, minimal view of the machine-written XML that thin_delta and
// era_invalidate print: a flat list of elements with their attributes and
// nesting depth. Parsing is done by expat (well-formedness, entities);
// callers then check the element names and attributes they expect, so
// anything unexpected is an error rather than silently skipped.
#ifndef CBTD_CBT_XML_ELEMENTS_H_
#define CBTD_CBT_XML_ELEMENTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/units.h"

namespace cbtd::cbt {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;
  int depth = 0;  // 0 for the root element
};

// Elements in document order. Non-whitespace character data is an error.
// INVALID_ARGUMENT naming `what` (e.g. "thin_delta output") and the line.
absl::StatusOr<std::vector<XmlElement>> ParseXmlElements(std::string_view xml,
                                                         std::string_view what);

// Attribute `name` of `e` as a decimal uint64 (digits only, no sign, no
// overflow); INVALID_ARGUMENT naming `what`, the element and the attribute.
absl::StatusOr<uint64_t> XmlUintAttribute(const XmlElement& e,
                                          const std::string& name,
                                          std::string_view what);

// The strict decimal uint64 parse the parsers in cbt/ share.
using common::ParseDecimalUint64;

}  // namespace cbtd::cbt

#endif  // CBTD_CBT_XML_ELEMENTS_H_
