#include "cbt/era_xml.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/xml_elements.h"

namespace cbtd::cbt {
namespace {

constexpr std::string_view kWhat = "era_invalidate output";

absl::Status Bad(const std::string& msg) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(kWhat), ": ", msg));
}

}  // namespace

absl::StatusOr<ExtentSet> ParseEraInvalidateXml(std::string_view xml,
                                                uint64_t block_sectors) {
  if (block_sectors == 0) return Bad("era block size is 0");
  absl::StatusOr<std::vector<XmlElement>> elements =
      ParseXmlElements(xml, kWhat);
  if (!elements.ok()) return elements.status();
  const std::vector<XmlElement>& els = *elements;
  if (els.empty() || els[0].name != "blocks") {
    return Bad("root element is not <blocks>");
  }
  const uint64_t block_bytes = block_sectors * 512;
  const uint64_t limit = UINT64_MAX / block_bytes;
  ExtentSet out;
  for (size_t i = 1; i < els.size(); ++i) {
    const XmlElement& e = els[i];
    if (e.depth != 1)
      return Bad(absl::StrCat("unexpected nested <", e.name, ">"));
    uint64_t begin = 0;
    uint64_t end = 0;
    if (e.name == "block") {
      absl::StatusOr<uint64_t> b = XmlUintAttribute(e, "block", kWhat);
      if (!b.ok()) return b.status();
      begin = *b;
      end = *b + 1;
      if (end == 0) return Bad("block number overflows");
    } else if (e.name == "range") {
      absl::StatusOr<uint64_t> b = XmlUintAttribute(e, "begin", kWhat);
      if (!b.ok()) return b.status();
      absl::StatusOr<uint64_t> en = XmlUintAttribute(e, "end", kWhat);
      if (!en.ok()) return en.status();
      begin = *b;
      end = *en;
      if (end <= begin) {
        return Bad(absl::StrCat("<range begin=", begin, " end=", end,
                                "> is empty or reversed"));
      }
    } else {
      return Bad(absl::StrCat("unexpected element <", e.name, ">"));
    }
    if (end > limit) return Bad(absl::StrCat("block ", end, " overflows"));
    out.Add(Extent{begin * block_bytes, (end - begin) * block_bytes});
  }
  return out;
}

}  // namespace cbtd::cbt
