#include "cbt/thin_delta_xml.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/xml_elements.h"

namespace cbtd::cbt {
namespace {

constexpr std::string_view kWhat = "thin_delta output";

absl::Status Bad(const std::string& msg) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(kWhat), ": ", msg));
}

}  // namespace

absl::StatusOr<ThinDelta> ParseThinDeltaXml(std::string_view xml) {
  absl::StatusOr<std::vector<XmlElement>> elements =
      ParseXmlElements(xml, kWhat);
  if (!elements.ok()) return elements.status();
  const std::vector<XmlElement>& els = *elements;
  if (els.empty() || els[0].name != "superblock") {
    return Bad("root element is not <superblock>");
  }
  ThinDelta out;
  absl::StatusOr<uint64_t> dbs =
      XmlUintAttribute(els[0], "data_block_size", kWhat);
  if (!dbs.ok()) return dbs.status();
  // dm-thin allows 64 KiB .. 1 GiB blocks; anything else is not thin_delta.
  if (*dbs < 128 || *dbs > (2u << 20) || *dbs % 128 != 0) {
    return Bad(absl::StrCat("data_block_size ", *dbs,
                            " sectors is not a valid thin-pool block size"));
  }
  out.data_block_sectors = *dbs;
  const uint64_t block_bytes = *dbs * 512;

  bool saw_diff = false;
  for (size_t i = 1; i < els.size(); ++i) {
    const XmlElement& e = els[i];
    if (e.name == "diff") {
      if (saw_diff || e.depth != 1) return Bad("unexpected <diff> element");
      saw_diff = true;
      absl::StatusOr<uint64_t> l = XmlUintAttribute(e, "left", kWhat);
      if (!l.ok()) return l.status();
      absl::StatusOr<uint64_t> r = XmlUintAttribute(e, "right", kWhat);
      if (!r.ok()) return r.status();
      out.left_thin_id = *l;
      out.right_thin_id = *r;
      continue;
    }
    const bool is_range = e.name == "same" || e.name == "different" ||
                          e.name == "left_only" || e.name == "right_only";
    if (!is_range)
      return Bad(absl::StrCat("unexpected element <", e.name, ">"));
    if (!saw_diff || e.depth != 2) {
      return Bad(absl::StrCat("<", e.name, "> outside <diff>"));
    }
    absl::StatusOr<uint64_t> begin = XmlUintAttribute(e, "begin", kWhat);
    if (!begin.ok()) return begin.status();
    absl::StatusOr<uint64_t> length = XmlUintAttribute(e, "length", kWhat);
    if (!length.ok()) return length.status();
    const uint64_t limit = UINT64_MAX / block_bytes;
    if (*begin > limit || *length > limit - *begin) {
      return Bad(absl::StrCat("<", e.name, " begin=", *begin,
                              " length=", *length, "> overflows"));
    }
    const Extent bytes{*begin * block_bytes, *length * block_bytes};
    if (e.name == "different" || e.name == "right_only") {
      out.changed_bytes.Add(bytes);
    } else if (e.name == "left_only") {
      out.zeroed_bytes.Add(bytes);
    }
  }
  if (!saw_diff) return Bad("no <diff> element");
  // A block both discarded and rewritten cannot happen in one diff; if the
  // tool ever said so, reading it is the safe answer.
  out.zeroed_bytes.Remove(out.changed_bytes);
  return out;
}

}  // namespace cbtd::cbt
