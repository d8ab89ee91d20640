#include "cbt/thin_delta_xml.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cbt/xml_elements.h"

namespace cbtd::cbt {
namespace {

constexpr std::string_view kWhat = "thin_delta output";
constexpr std::string_view kDumpWhat = "thin_dump output";

absl::Status Bad(const std::string& msg, std::string_view what = kWhat) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": ", msg));
}

// The root <superblock>'s data_block_size, in sectors.
absl::StatusOr<uint64_t> DataBlockSectors(const std::vector<XmlElement>& els,
                                          std::string_view what) {
  if (els.empty() || els[0].name != "superblock") {
    return Bad("root element is not <superblock>", what);
  }
  absl::StatusOr<uint64_t> dbs =
      XmlUintAttribute(els[0], "data_block_size", what);
  if (!dbs.ok()) return dbs.status();
  // dm-thin allows 64 KiB .. 1 GiB blocks; anything else is not the tool's.
  if (*dbs < 128 || *dbs > (2u << 20) || *dbs % 128 != 0) {
    return Bad(absl::StrCat("data_block_size ", *dbs,
                            " sectors is not a valid thin-pool block size"),
               what);
  }
  return *dbs;
}

// `count` blocks from `begin` as bytes; INVALID_ARGUMENT if that overflows.
absl::StatusOr<Extent> BlockBytes(uint64_t begin, uint64_t count,
                                  uint64_t block_bytes, const XmlElement& e,
                                  std::string_view what) {
  const uint64_t limit = UINT64_MAX / block_bytes;
  if (begin > limit || count > limit - begin) {
    return Bad(absl::StrCat("<", e.name, " ", begin, "+", count, "> overflows"),
               what);
  }
  return Extent{begin * block_bytes, count * block_bytes};
}

}  // namespace

absl::StatusOr<ThinDelta> ParseThinDeltaXml(std::string_view xml) {
  absl::StatusOr<std::vector<XmlElement>> elements =
      ParseXmlElements(xml, kWhat);
  if (!elements.ok()) return elements.status();
  const std::vector<XmlElement>& els = *elements;
  absl::StatusOr<uint64_t> dbs = DataBlockSectors(els, kWhat);
  if (!dbs.ok()) return dbs.status();
  ThinDelta out;
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
    absl::StatusOr<Extent> bytes =
        BlockBytes(*begin, *length, block_bytes, e, kWhat);
    if (!bytes.ok()) return bytes.status();
    if (e.name == "different" || e.name == "right_only") {
      out.changed_bytes.Add(*bytes);
    } else if (e.name == "left_only") {
      out.zeroed_bytes.Add(*bytes);
    }
  }
  if (!saw_diff) return Bad("no <diff> element");
  // A block both discarded and rewritten cannot happen in one diff; if the
  // tool ever said so, reading it is the safe answer.
  out.zeroed_bytes.Remove(out.changed_bytes);
  return out;
}

absl::StatusOr<ThinMapping> ParseThinDumpXml(std::string_view xml,
                                             uint64_t dev_id) {
  absl::StatusOr<std::vector<XmlElement>> elements =
      ParseXmlElements(xml, kDumpWhat);
  if (!elements.ok()) return elements.status();
  const std::vector<XmlElement>& els = *elements;
  absl::StatusOr<uint64_t> dbs = DataBlockSectors(els, kDumpWhat);
  if (!dbs.ok()) return dbs.status();
  ThinMapping out;
  out.data_block_sectors = *dbs;
  const uint64_t block_bytes = *dbs * 512;
  bool in_device = false, saw_device = false;
  for (size_t i = 1; i < els.size(); ++i) {
    const XmlElement& e = els[i];
    if (e.name == "device" && e.depth == 1) {
      absl::StatusOr<uint64_t> id = XmlUintAttribute(e, "dev_id", kDumpWhat);
      if (!id.ok()) return id.status();
      in_device = *id == dev_id;
      saw_device = saw_device || in_device;
      continue;
    }
    const bool range = e.name == "range_mapping";
    if ((!range && e.name != "single_mapping") || e.depth != 2) {
      return Bad(absl::StrCat("unexpected element <", e.name, ">"), kDumpWhat);
    }
    if (!in_device) continue;  // another device (without --dev-id)
    absl::StatusOr<uint64_t> begin =
        XmlUintAttribute(e, range ? "origin_begin" : "origin_block", kDumpWhat);
    if (!begin.ok()) return begin.status();
    absl::StatusOr<uint64_t> length =
        range ? XmlUintAttribute(e, "length", kDumpWhat)
              : absl::StatusOr<uint64_t>(1);
    if (!length.ok()) return length.status();
    absl::StatusOr<Extent> bytes =
        BlockBytes(*begin, *length, block_bytes, e, kDumpWhat);
    if (!bytes.ok()) return bytes.status();
    out.mapped_bytes.Add(*bytes);
  }
  if (!saw_device) {
    return absl::NotFoundError(absl::StrCat(
        std::string(kDumpWhat), ": no thin device ", dev_id, " in the pool"));
  }
  return out;
}

}  // namespace cbtd::cbt
